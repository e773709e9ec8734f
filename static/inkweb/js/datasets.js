/* Dataset pages: create a dataset, add and remove slides, start, follow and cancel exports. */
(function () {
  "use strict";

  const FINISHED = ["succeeded", "failed", "cancelled"];

  function showError(element, error) {
    if (!element) {
      InkWeb.toast(error.message, "error");
      return;
    }
    element.textContent = error.message;
    element.hidden = false;
  }

  // ---- dataset list ----

  const createForm = document.getElementById("dataset-create-form");
  if (createForm) {
    const listConfig = JSON.parse(document.getElementById("datasets-config").textContent);
    const errorBox = document.getElementById("dataset-create-error");
    createForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      const body = {
        name: createForm.elements.name.value,
        description: createForm.elements.description.value,
      };
      try {
        const dataset = await InkWeb.fetchJSON(listConfig.datasetsApi, { method: "POST", body });
        window.location.href = `${window.location.pathname.replace(/\/$/, "")}/${dataset.id}/`;
      } catch (error) {
        showError(errorBox, error);
      }
    });
  }

  // ---- dataset detail ----

  const configElement = document.getElementById("dataset-config");
  if (!configElement) return;
  const config = JSON.parse(configElement.textContent);
  const errorBox = document.getElementById("dataset-error");
  const statusBox = document.getElementById("export-status");
  const badge = document.getElementById("export-badge");
  const progress = document.getElementById("export-progress");
  const percentText = document.getElementById("export-percent");
  const messageText = document.getElementById("export-message");
  const startButton = document.getElementById("export-start");
  const cancelButton = document.getElementById("export-cancel");
  let current = config.activeExport;

  /** Put `id` in place of the last "/0/" of a URL reversed with a placeholder id. */
  function withId(template, id) {
    const index = template.lastIndexOf("/0/");
    return `${template.slice(0, index)}/${id}/${template.slice(index + 3)}`;
  }

  function render(exportState) {
    current = exportState;
    const pct = InkWeb.percent(exportState.progress);
    statusBox.hidden = false;
    statusBox.dataset.status = exportState.status;
    badge.className = `badge run-${exportState.status}`;
    badge.textContent = InkWeb.capitalise(exportState.status);
    progress.querySelector(".bar").style.width = `${exportState.status === "succeeded" ? 100 : pct}%`;
    progress.setAttribute("aria-valuenow", String(pct));
    percentText.textContent = `${pct}%`;
    messageText.textContent = exportState.error || exportState.message || exportState.stage || "";
    messageText.classList.toggle("error", Boolean(exportState.error));
    if (cancelButton) cancelButton.hidden = FINISHED.includes(exportState.status);
    if (FINISHED.includes(exportState.status)) {
      // The version list and its download links are rendered by the server.
      setTimeout(() => window.location.reload(), 1500);
    }
  }

  async function pollExport() {
    if (!current || FINISHED.includes(current.status)) return;
    render(await InkWeb.fetchJSON(withId(config.urls.exportDetail, current.id)));
  }

  let socket = null;
  let pollTimer = null;
  function follow() {
    if (!pollTimer) pollTimer = setInterval(() => pollExport().catch(() => {}), 2000);
    if (socket) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    try {
      socket = new WebSocket(`${scheme}//${window.location.host}/ws/exports/?dataset=${config.datasetId}`);
    } catch (error) {
      socket = null;
      return;
    }
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.event === "export" && current && data.export.id === current.id) {
        render(Object.assign({}, current, data.export));
      }
    };
    socket.onclose = () => { socket = null; };
  }

  if (current) {
    render(current);
    follow();
  }

  if (startButton) {
    startButton.addEventListener("click", async () => {
      startButton.disabled = true;
      try {
        render(await InkWeb.fetchJSON(config.urls.exports, { method: "POST", body: {} }));
        follow();
      } catch (error) {
        startButton.disabled = false;
        showError(errorBox, error);
      }
    });
  }

  if (cancelButton) {
    cancelButton.addEventListener("click", async () => {
      if (!current) return;
      try {
        render(await InkWeb.fetchJSON(withId(config.urls.exportCancel, current.id), { method: "POST" }));
      } catch (error) {
        showError(errorBox, error);
      }
    });
  }

  const addForm = document.getElementById("slide-add-form");
  if (addForm) {
    addForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      const slide = Number(addForm.elements.slide.value);
      if (!slide) return;
      try {
        await InkWeb.fetchJSON(config.urls.slides, { method: "POST", body: { slide } });
        window.location.reload();
      } catch (error) {
        showError(errorBox, error);
      }
    });
  }

  document.querySelectorAll(".member-remove").forEach((button) => {
    button.addEventListener("click", async () => {
      try {
        await InkWeb.fetchJSON(withId(config.urls.slide, button.dataset.slideId), { method: "DELETE" });
        window.location.reload();
      } catch (error) {
        showError(errorBox, error);
      }
    });
  });
})();
