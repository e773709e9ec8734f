/* Comments pinned to a point of the slide: numbered markers on both OpenSeadragon viewers,
   the list in the sidebar, and "Add comment" followed by a click on either image.
   Points are level-0 pixels, the image coordinates of both viewers. */
(function () {
  "use strict";

  const panel = document.getElementById("comments-panel");
  if (!panel) return;

  const byId = (id) => document.getElementById(id);
  const ui = {
    add: byId("comment-add"),
    hint: byId("comment-hint"),
    form: byId("comment-form"),
    text: byId("comment-text"),
    point: byId("comment-point"),
    cancel: byId("comment-cancel"),
    save: byId("comment-save"),
    error: byId("comment-error"),
    list: byId("comment-list"),
    empty: byId("comment-empty"),
  };
  const commentsUrl = panel.dataset.commentsUrl;
  const runId = panel.dataset.runId ? Number(panel.dataset.runId) : null;

  const state = {
    comments: [],
    // Open viewers by name ("original", "restored") and the marker elements drawn on each.
    viewers: {},
    markers: {},
    picking: false,
    picked: null,
  };

  // ------------------------------------------------------------------ markers

  function markerElement(label, title, extraClass) {
    const element = document.createElement("div");
    element.className = `comment-marker ${extraClass || ""}`.trim();
    element.textContent = label;
    element.title = title;
    return element;
  }

  function addMarker(name, element, point) {
    const viewer = state.viewers[name];
    const item = viewer.world.getItemAt(0);
    viewer.addOverlay({
      element,
      location: item.imageToViewportCoordinates(point.x, point.y),
      placement: OpenSeadragon.Placement.CENTER,
      checkResize: false,
    });
    state.markers[name].push(element);
  }

  function drawMarkers(name) {
    const viewer = state.viewers[name];
    (state.markers[name] || []).forEach((element) => viewer.removeOverlay(element));
    state.markers[name] = [];
    state.comments.forEach((comment, index) => {
      const element = markerElement(String(index + 1), `${comment.author}: ${comment.text}`);
      element.dataset.commentId = comment.id;
      new OpenSeadragon.MouseTracker({
        element,
        clickHandler: () => highlight(comment.id),
      });
      addMarker(name, element, comment);
    });
    if (state.picked) {
      addMarker(name, markerElement("+", "New comment", "pending"), state.picked);
    }
  }

  function drawAllMarkers() {
    Object.keys(state.viewers).forEach(drawMarkers);
  }

  // ------------------------------------------------------------------ sidebar list

  function highlight(commentId) {
    ui.list.querySelectorAll("li").forEach((item) => {
      item.classList.toggle("selected", item.dataset.commentId === String(commentId));
    });
  }

  function panTo(comment) {
    // Both viewers move, so the point is centred even while synchronisation is off.
    Object.values(state.viewers).forEach((viewer) => {
      const item = viewer.world.getItemAt(0);
      viewer.viewport.panTo(item.imageToViewportCoordinates(comment.x, comment.y));
    });
    highlight(comment.id);
  }

  function listItem(comment, number) {
    const item = document.createElement("li");
    item.dataset.commentId = comment.id;
    item.innerHTML = `<button type="button" class="comment-item">
        <span class="comment-number"></span>
        <span class="comment-body"><strong></strong> <span class="muted small"></span><span class="comment-text"></span></span>
      </button>`;
    item.querySelector(".comment-number").textContent = number;
    item.querySelector("strong").textContent = comment.author;
    const when = new Date(comment.created_at);
    const where = `(${Math.round(comment.x)}, ${Math.round(comment.y)})`;
    item.querySelector(".muted").textContent = `${when.toLocaleString()} · ${where}${comment.run_id ? ` · run #${comment.run_id}` : ""}`;
    item.querySelector(".comment-text").textContent = comment.text;
    item.querySelector("button").addEventListener("click", () => panTo(comment));
    return item;
  }

  function renderList() {
    ui.list.replaceChildren(...state.comments.map((comment, index) => listItem(comment, index + 1)));
    ui.empty.hidden = state.comments.length > 0;
  }

  // ------------------------------------------------------------------ adding a comment

  function setPicking(picking) {
    state.picking = picking;
    if (ui.hint) ui.hint.hidden = !picking;
    document.body.classList.toggle("comment-picking", picking);
  }

  function resetForm() {
    state.picked = null;
    setPicking(false);
    if (!ui.form) return;
    ui.form.reset();
    ui.form.hidden = true;
    ui.error.hidden = true;
    drawAllMarkers();
  }

  function pointFromClick(viewer, event) {
    const item = viewer.world.getItemAt(0);
    const viewportPoint = viewer.viewport.pointFromPixel(event.position);
    const image = item.viewportToImageCoordinates(viewportPoint);
    const size = item.getContentSize();
    if (image.x < 0 || image.y < 0 || image.x >= size.x || image.y >= size.y) return null;
    return { x: Math.round(image.x * 10) / 10, y: Math.round(image.y * 10) / 10 };
  }

  function onCanvasClick(viewer, event) {
    // event.quick is false at the end of a drag, which pans instead of picking.
    if (!state.picking || !event.quick) return;
    event.preventDefaultAction = true;
    const point = pointFromClick(viewer, event);
    if (!point) {
      InkWeb.toast("That point is outside the image; click on the slide.", "error");
      return;
    }
    state.picked = point;
    setPicking(false);
    ui.point.textContent = `(${Math.round(point.x)}, ${Math.round(point.y)}) px`;
    ui.form.hidden = false;
    ui.error.hidden = true;
    drawAllMarkers();
    ui.text.focus();
  }

  async function saveComment() {
    if (!state.picked || !ui.text.value.trim()) return;
    ui.save.disabled = true;
    ui.error.hidden = true;
    const body = { x: state.picked.x, y: state.picked.y, text: ui.text.value };
    if (runId) body.run = runId;
    try {
      const comment = await InkWeb.fetchJSON(commentsUrl, { method: "POST", body });
      state.comments.push(comment);
      renderList();
      resetForm();
      highlight(comment.id);
      InkWeb.toast(`Comment ${state.comments.length} added.`);
    } catch (error) {
      ui.error.textContent = error.message;
      ui.error.hidden = false;
    } finally {
      ui.save.disabled = false;
    }
  }

  if (ui.add) {
    ui.add.addEventListener("click", () => {
      resetForm();
      setPicking(true);
    });
    ui.cancel.addEventListener("click", resetForm);
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      saveComment();
    });
    ui.text.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        saveComment();
      }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && (state.picking || state.picked)) resetForm();
    });
  }

  // ------------------------------------------------------------------ start

  function attach(name, viewer) {
    if (state.viewers[name] === viewer) return;
    state.viewers[name] = viewer;
    state.markers[name] = [];
    viewer.addHandler("canvas-click", (event) => onCanvasClick(viewer, event));
    drawMarkers(name);
  }

  document.addEventListener("inkweb:viewer-open", (event) => attach(event.detail.name, event.detail.viewer));

  InkWeb.fetchJSON(commentsUrl)
    .then((comments) => {
      state.comments = comments;
      renderList();
      drawAllMarkers();
    })
    .catch((error) => InkWeb.toast(`The comments could not be loaded: ${error.message}`, "error"));

  // Read by the browser tests and handy in the console.
  window.inkwebComments = {
    get comments() { return state.comments; },
    get viewers() { return Object.keys(state.viewers); },
  };
})();
