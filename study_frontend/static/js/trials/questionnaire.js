// The questionnaire after the trials: the study's items (backend/study/questionnaire.py) as radio groups and
// text areas in one form. Resolves with { answers } (item id -> option or text, null when left blank) once
// every required item is answered; the server checks the same rules again.

import { h, showScreen } from "../ui.js";

export const questionnaire = {
  info: {
    name: "questionnaire",
    parameters: {
      items: {
        type: "array",
        description: "the study's items: { id, kind, prompt, options (choice kinds), required, max_length }",
      },
    },
    data: { answers: { type: "object", description: "item id -> the chosen option or the text; null: blank" } },
  },
  async run(root, params, life) {
    const fields = params.items.map(field);
    const error = h("p", { class: "form-error", role: "alert", id: "questionnaire-error" });
    const submit = h("button", { class: "primary", type: "submit", id: "questionnaire-submit" }, "Submit and finish");
    const form = h("form", { class: "questionnaire", novalidate: true }, ...fields.map((f) => f.el), error, submit);
    showScreen(root, "questionnaire", [
      h(
        "section",
        { class: "screen-text", "aria-labelledby": "questionnaire-heading" },
        h("h1", { id: "questionnaire-heading" }, "A few questions about you"),
        h("p", {}, "Your trial answers are saved. These last questions help us understand the results; items marked * need an answer."),
        form,
      ),
    ]);
    return new Promise((resolve) => {
      life.on(form, "submit", (event) => {
        event.preventDefault(); // nothing is posted by the form itself: main.js sends the answers
        const answers = {};
        const missing = [];
        for (const f of fields) {
          answers[f.item.id] = f.value();
          if (f.item.required && answers[f.item.id] === null) missing.push(f.item.prompt);
        }
        if (missing.length) {
          error.textContent = `Please answer: ${missing.join(" ")}`;
          return;
        }
        resolve({ answers });
      });
    });
  },
};

/** One item as form controls: { item, el, value() } (value: the option or trimmed text, or null). */
function field(item) {
  const name = `q-${item.id}`;
  const label = item.prompt + (item.required ? " *" : "");
  if (item.kind === "free_text") {
    const area = h("textarea", { id: name, name, maxlength: item.max_length, rows: 3 });
    return {
      item,
      el: h("div", { class: "q-item" }, h("label", { for: name }, label), area),
      value: () => area.value.trim() || null,
    };
  }
  const options = item.options.map((option, k) => {
    const id = `${name}-${k}`;
    return h("label", { class: "q-option", for: id }, h("input", { type: "radio", name, id, value: option }), " ", option);
  });
  const el = h("fieldset", { class: "q-item", id: name }, h("legend", {}, label), ...options);
  return {
    item,
    el,
    value: () => {
      const checked = el.querySelector("input:checked");
      return checked ? checked.value : null;
    },
  };
}
