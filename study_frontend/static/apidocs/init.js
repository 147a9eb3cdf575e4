// Starts Swagger UI (loaded just before from /api/v1/docs/assets/) on the page's OpenAPI schema.
// A file of its own rather than FastAPI's inline script, so the docs page's CSP needs no 'unsafe-inline'.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis],
    showExtensions: true,
    showCommonExtensions: true,
  });
})();
