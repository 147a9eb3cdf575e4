"""Files in and out over HTTP, shared by the research API (`backend.api`) and the dashboard (`backend.admin`).

Why a package of its own: the dashboard serves the same downloads, exports and dataset uploads as the research
API, and borrowing them from the API's routers tied the dashboard to modules it should not need. Here live
the HTTP side of a blob download (`downloads.blob_file`, a remote blob streamed by `blobstream`), of a study
export (`exports.export_response`) and of a dataset upload (`uploads.dataset_upload`); what they read or store
is the services' (`backend.services.media`, `exports`, `dataset_catalog`).
"""
