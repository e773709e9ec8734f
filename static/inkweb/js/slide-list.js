/* Slide list: upload dialog with upload progress, and live run progress in the rows. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("list-config").textContent);
  const table = document.getElementById("slide-table");
  const liveStatus = document.getElementById("live-status");

  function escapeHtml(text) {
    const div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }

  function truncate(text, length) {
    return text && text.length > length ? `${text.slice(0, length - 1)}…` : text || "";
  }

  // ---- rows ----

  function rowOf(slideId) {
    return table.querySelector(`tr[data-slide-id="${slideId}"]`);
  }

  function runCellHtml(run, slide) {
    if (!run) {
      if (slide && slide.ingest_status === "failed") {
        return `<span class="error small" title="${escapeHtml(slide.ingest_error)}">${escapeHtml(truncate(slide.ingest_error, 70))}</span>`;
      }
      return '<span class="muted">—</span>';
    }
    const pct = InkWeb.percent(run.progress);
    let html = `<div class="run-cell"><span class="badge run-${run.status}">${InkWeb.capitalise(run.status)}</span>`;
    if (run.status === "queued" || run.status === "running") {
      const stage = run.stage ? ` · ${escapeHtml(run.stage)}` : "";
      html += `<div class="progress small" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${pct}"><div class="bar" style="width: ${pct}%"></div></div>`;
      html += `<span class="muted small run-stage">${pct}%${stage}</span>`;
    } else if (run.status === "failed") {
      html += `<span class="error small" title="${escapeHtml(run.error)}">${escapeHtml(truncate(run.error, 70))}</span>`;
    }
    return `${html}</div>`;
  }

  function inkCellHtml(inkFound) {
    if (inkFound === true) return '<span class="badge ink-found">Ink found</span>';
    if (inkFound === false) return '<span class="badge ink-none">No ink</span>';
    return '<span class="muted">—</span>';
  }

  function formatNumber(value) {
    return Number(value).toLocaleString("en-US");
  }

  function renderRow(slide) {
    const row = rowOf(slide.id);
    if (!row) return;
    const cell = (name) => row.querySelector(`[data-cell="${name}"]`);
    row.dataset.state = slide.state;
    cell("format").textContent = slide.format || "—";
    cell("size").innerHTML = slide.width
      ? `${formatNumber(slide.width)} × ${formatNumber(slide.height)}<span class="unit"> px</span>` : "—";
    cell("mpp").innerHTML = slide.mpp_x
      ? `${slide.mpp_x.toFixed(3)}<span class="unit"> µm/px</span>` : '<span class="muted">unknown</span>';
    cell("ink").innerHTML = inkCellHtml(slide.ink_found);
    cell("run").innerHTML = runCellHtml(slide.latest_run, slide);
    cell("state").innerHTML = `<span class="badge state-${slide.state}">${escapeHtml(config.stateLabels[slide.state] || slide.state)}</span>`;
    const placeholder = row.querySelector(".thumb-placeholder");
    if (placeholder && slide.thumbnail_url) {
      const image = document.createElement("img");
      image.src = slide.thumbnail_url;
      image.alt = "";
      placeholder.replaceWith(image);
    }
  }

  function applyRunEvent(run) {
    const row = rowOf(run.slide_id);
    if (!row) return;
    row.querySelector('[data-cell="run"]').innerHTML = runCellHtml(run);
    if (!["queued", "running"].includes(run.status) || run.progress === 0) {
      refreshRows([run.slide_id]);
    }
  }

  async function refreshRows(ids) {
    if (!ids.length) return;
    const data = await InkWeb.fetchJSON(`${config.slidesApi}?ids=${ids.join(",")}&limit=500`);
    data.results.forEach(renderRow);
  }

  function visibleIds() {
    return Array.from(table.querySelectorAll("tr[data-slide-id]")).map((row) => row.dataset.slideId);
  }

  const feed = new InkWeb.ProgressFeed({
    onEvent(message) {
      if (message.event === "run") {
        applyRunEvent(message.run);
      } else if (message.event === "slide") {
        refreshRows([message.slide_id]).catch(() => {});
      }
    },
    poll: () => refreshRows(visibleIds()),
    onModeChange(mode) {
      liveStatus.textContent = mode === "live" ? "Live updates on" : "Live updates unavailable; refreshing every few seconds";
    },
  });
  feed.start();

  // ---- upload ----

  const dialog = document.getElementById("upload-dialog");
  const openButton = document.getElementById("upload-open");
  if (!dialog || !openButton) return;

  const form = document.getElementById("upload-form");
  const fileInput = document.getElementById("upload-file");
  const submitButton = document.getElementById("upload-submit");
  const cancelButton = document.getElementById("upload-cancel");
  const progressBox = dialog.querySelector(".upload-progress");
  const progressBar = progressBox.querySelector(".bar");
  const progressText = progressBox.querySelector(".upload-percent");
  const errorBox = dialog.querySelector(".upload-error");
  let request = null;

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function resetUpload() {
    form.reset();
    errorBox.hidden = true;
    progressBox.hidden = true;
    progressBar.style.width = "0%";
    submitButton.disabled = false;
    request = null;
  }

  openButton.addEventListener("click", () => {
    resetUpload();
    dialog.showModal();
  });

  cancelButton.addEventListener("click", () => {
    if (request) request.abort();
    dialog.close();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const file = fileInput.files[0];
    if (!file) {
      showError("Choose a slide file first.");
      return;
    }
    if (file.size > config.maxUploadBytes) {
      showError(`${file.name} is larger than the upload limit of ${(config.maxUploadBytes / 1024 ** 3).toFixed(1)} GiB.`);
      return;
    }

    const body = new FormData(form);
    request = new XMLHttpRequest();
    request.open("POST", config.slidesApi);
    request.setRequestHeader("X-CSRFToken", InkWeb.csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (progress) => {
      if (!progress.lengthComputable) return;
      const pct = Math.round((progress.loaded / progress.total) * 100);
      progressBar.style.width = `${pct}%`;
      progressText.textContent = pct < 100 ? `Uploading… ${pct}%` : "Checking the file…";
    });
    request.addEventListener("load", () => {
      let payload = null;
      try {
        payload = JSON.parse(request.responseText);
      } catch (error) {
        payload = null;
      }
      if (request.status === 201) {
        progressText.textContent = "Stored. Reading metadata…";
        InkWeb.toast(`${payload.name} uploaded; ingest started.`);
        setTimeout(() => window.location.reload(), 600);
        return;
      }
      submitButton.disabled = false;
      progressBox.hidden = true;
      showError(payload && payload.detail ? payload.detail : `Upload failed with status ${request.status}.`);
    });
    request.addEventListener("error", () => {
      submitButton.disabled = false;
      progressBox.hidden = true;
      showError("The upload was interrupted (network error). Check the connection and try again.");
    });
    submitButton.disabled = true;
    progressBox.hidden = false;
    progressText.textContent = "Uploading… 0%";
    request.send(body);
  });
})();
