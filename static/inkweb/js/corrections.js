/* Region corrections on the restored viewer: drag rectangles, choose "keep original here" or
   "restore again" with a method, and submit them as a revision of the viewed run. The
   revisions panel outlines the regions each revision corrected on both viewers.
   Rectangles are level-0 pixels, the image coordinates of both viewers. */
(function () {
  "use strict";

  const configElement = document.getElementById("viewer-config");
  if (!configElement || typeof OpenSeadragon === "undefined") return;
  const config = JSON.parse(configElement.textContent);
  const settings = config.corrections;
  if (!settings) return;

  const byId = (id) => document.getElementById(id);
  const ui = {
    start: byId("correct-start"),
    form: byId("correction-form"),
    drawing: byId("correction-drawing"),
    actions: byId("correction-actions"),
    method: byId("correction-method"),
    queue: byId("correction-queue"),
    submit: byId("correction-submit"),
    cancel: byId("correction-cancel"),
    error: byId("correction-error"),
    revisions: byId("revision-list"),
  };
  // A drag shorter than this many screen pixels is a click, not a rectangle.
  const MIN_DRAG_PX = 4;

  const state = {
    viewers: {}, // open viewers by name ("original", "restored")
    layer: null, // the element over the restored image that takes drags while drawing
    drawing: false,
    drag: null, // {start, element} while the button is down
    rectangles: [], // queued corrections with their overlay element
    selected: -1,
    choice: { action: null, method: settings.restoreMethods[0].value }, // given to new rectangles
    outlines: {}, // run id -> overlay elements on both viewers
    pinned: new Set(),
    submitting: false,
  };

  // ------------------------------------------------------------------ geometry

  function imageItem(viewer) {
    return viewer && viewer.world.getItemAt(0);
  }

  function imagePoint(viewer, position) {
    const item = imageItem(viewer);
    const point = item.viewerElementToImageCoordinates(position);
    const size = item.getContentSize();
    return {
      x: Math.min(Math.max(point.x, 0), size.x),
      y: Math.min(Math.max(point.y, 0), size.y),
    };
  }

  function rectangleBetween(first, second) {
    // Whole pixels that the dragged area touches, as the API takes them.
    const x = Math.floor(Math.min(first.x, second.x));
    const y = Math.floor(Math.min(first.y, second.y));
    return {
      x,
      y,
      width: Math.ceil(Math.max(first.x, second.x)) - x,
      height: Math.ceil(Math.max(first.y, second.y)) - y,
    };
  }

  function viewportRect(viewer, rect) {
    return imageItem(viewer).imageToViewportRectangle(rect.x, rect.y, rect.width, rect.height);
  }

  // ------------------------------------------------------------------ drawing

  const methodLabels = Object.fromEntries(settings.restoreMethods.map(({ value, label }) => [value, label]));

  function describe(rectangle) {
    if (rectangle.action === "keep-original") return "keep original";
    if (rectangle.action === "restore") return `restore with ${methodLabels[rectangle.method] || rectangle.method}`;
    return "choose an action";
  }

  function styleRectangle(rectangle, index) {
    const element = rectangle.element;
    element.className = "correction-rect";
    if (rectangle.action) element.classList.add(`action-${rectangle.action}`);
    element.classList.toggle("selected", index === state.selected);
    element.querySelector(".label").textContent = `${index + 1} · ${describe(rectangle)}`;
  }

  function rectangleElement() {
    const element = document.createElement("div");
    const label = document.createElement("span");
    label.className = "label";
    element.appendChild(label);
    return element;
  }

  function startDrag(event) {
    const viewer = state.viewers.restored;
    if (!state.drawing || !imageItem(viewer)) return;
    const element = rectangleElement();
    element.className = "correction-rect";
    const start = imagePoint(viewer, event.position);
    state.drag = { start, startPixel: event.position, element };
    viewer.addOverlay({ element, location: viewportRect(viewer, rectangleBetween(start, start)) });
  }

  function moveDrag(event) {
    if (!state.drag) return;
    const viewer = state.viewers.restored;
    const rect = rectangleBetween(state.drag.start, imagePoint(viewer, event.position));
    viewer.updateOverlay(state.drag.element, viewportRect(viewer, rect));
  }

  function endDrag(event) {
    if (!state.drag) return;
    const viewer = state.viewers.restored;
    const { start, startPixel, element } = state.drag;
    state.drag = null;
    const rect = rectangleBetween(start, imagePoint(viewer, event.position));
    const dragged = Math.abs(event.position.x - startPixel.x) >= MIN_DRAG_PX
      && Math.abs(event.position.y - startPixel.y) >= MIN_DRAG_PX;
    if (!dragged || rect.width < 1 || rect.height < 1) {
      viewer.removeOverlay(element);
      return;
    }
    viewer.updateOverlay(element, viewportRect(viewer, rect));
    state.rectangles.push(Object.assign(rect, {
      action: state.choice.action,
      method: state.choice.method,
      element,
    }));
    select(state.rectangles.length - 1);
  }

  function setDrawing(drawing) {
    if (drawing && !imageItem(state.viewers.restored)) {
      InkWeb.toast("The restored image is still loading; try again in a moment.", "error");
      return;
    }
    state.drawing = drawing;
    if (state.layer) state.layer.hidden = !drawing;
    document.body.classList.toggle("correction-drawing", drawing);
    ui.start.setAttribute("aria-pressed", String(drawing));
    ui.drawing.textContent = drawing ? "drawing" : "drawing paused";
    if (drawing) ui.form.hidden = false;
    else if (!state.rectangles.length) ui.form.hidden = true;
  }

  function clearRectangles() {
    const viewer = state.viewers.restored;
    state.rectangles.forEach((rectangle) => viewer && viewer.removeOverlay(rectangle.element));
    state.rectangles = [];
    state.selected = -1;
    render();
  }

  // ------------------------------------------------------------------ form

  function select(index) {
    state.selected = index;
    render();
  }

  function render() {
    const current = state.rectangles[state.selected];
    ui.actions.disabled = !current;
    ui.form.querySelectorAll('input[name="correction-action"]').forEach((radio) => {
      radio.checked = Boolean(current) && radio.value === current.action;
    });
    if (current && current.action === "restore") ui.method.value = current.method;

    ui.queue.replaceChildren(...state.rectangles.map((rectangle, index) => {
      styleRectangle(rectangle, index);
      const item = document.createElement("li");
      item.classList.toggle("selected", index === state.selected);
      item.textContent = `${rectangle.width} × ${rectangle.height} px at (${rectangle.x}, ${rectangle.y}): ${describe(rectangle)}`;
      item.addEventListener("click", () => select(index));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.title = "Remove this region";
      remove.setAttribute("aria-label", `Remove region ${index + 1}`);
      remove.textContent = "×";
      remove.addEventListener("click", (event) => {
        event.stopPropagation();
        removeRectangle(index);
      });
      item.appendChild(remove);
      return item;
    }));
    const complete = state.rectangles.length > 0 && state.rectangles.every((rectangle) => rectangle.action);
    ui.submit.disabled = state.submitting || !complete;
  }

  function removeRectangle(index) {
    const [rectangle] = state.rectangles.splice(index, 1);
    state.viewers.restored.removeOverlay(rectangle.element);
    state.selected = Math.min(state.selected, state.rectangles.length - 1);
    render();
  }

  function chooseAction(action) {
    state.choice = { action, method: ui.method.value };
    const current = state.rectangles[state.selected];
    if (current) {
      current.action = action;
      current.method = ui.method.value;
    }
    render();
  }

  async function submit() {
    const corrections = state.rectangles.map((rectangle) => {
      const item = { x: rectangle.x, y: rectangle.y, width: rectangle.width, height: rectangle.height, action: rectangle.action };
      if (rectangle.action === "restore") item.method = rectangle.method;
      return item;
    });
    state.submitting = true;
    ui.error.hidden = true;
    render();
    try {
      const url = settings.revisionsUrl.replace("/0/", `/${config.viewedRunId}/`);
      const revision = await InkWeb.fetchJSON(url, { method: "POST", body: { corrections } });
      clearRectangles();
      setDrawing(false);
      ui.form.hidden = true;
      listRevision(revision);
      InkWeb.toast(`Revision #${revision.id} queued; the restored image switches to it when it finishes.`);
      if (window.inkwebViewer && window.inkwebViewer.showRun) window.inkwebViewer.showRun(revision);
    } catch (error) {
      ui.error.textContent = error.message;
      ui.error.hidden = false;
    } finally {
      state.submitting = false;
      render();
    }
  }

  // ------------------------------------------------------------------ revisions panel

  function lineageEntry(runId) {
    return settings.lineage.find((entry) => entry.id === runId);
  }

  function drawOutlines(runId, names) {
    const entry = lineageEntry(runId);
    if (!entry) return;
    state.outlines[runId] = state.outlines[runId] || [];
    names.forEach((name) => {
      const viewer = state.viewers[name];
      if (!imageItem(viewer)) return;
      entry.corrections.forEach((correction, index) => {
        const element = document.createElement("div");
        element.className = `revision-outline action-${correction.action}`;
        element.title = `Run #${runId}, region ${index + 1}: ${describe(correction)}`;
        element.dataset.viewer = name;
        viewer.addOverlay({ element, location: viewportRect(viewer, correction) });
        state.outlines[runId].push({ viewer, element });
      });
    });
  }

  function showOutlines(runId, visible) {
    const existing = state.outlines[runId] || [];
    existing.forEach(({ viewer, element }) => viewer.removeOverlay(element));
    delete state.outlines[runId];
    if (visible) drawOutlines(runId, Object.keys(state.viewers));
    const item = ui.revisions && ui.revisions.querySelector(`li[data-run-id="${runId}"]`);
    if (item) item.classList.toggle("outlined", visible);
  }

  function wireRevisionItem(item) {
    const runId = Number(item.dataset.runId);
    item.addEventListener("mouseenter", () => showOutlines(runId, true));
    item.addEventListener("mouseleave", () => showOutlines(runId, state.pinned.has(runId)));
    const checkbox = item.querySelector('input[type="checkbox"]');
    if (!checkbox) return;
    checkbox.addEventListener("change", () => {
      if (checkbox.checked) state.pinned.add(runId);
      else state.pinned.delete(runId);
      showOutlines(runId, checkbox.checked);
    });
  }

  function listRevision(revision) {
    if (!ui.revisions) return;
    settings.lineage.push({ id: revision.id, kind: revision.kind, corrections: revision.corrections });
    const item = document.createElement("li");
    item.dataset.runId = revision.id;
    item.dataset.kind = revision.kind;
    item.innerHTML = `<div class="revision-line">#<span class="number"></span>
        <span class="muted small">revision of #<span class="parent"></span></span>
        <span class="badge run-${revision.status}"></span></div>
      <div class="muted small"><label class="revision-show"><input type="checkbox"> <span class="count"></span></label> · just now by <span class="who"></span></div>`;
    item.querySelector(".number").textContent = revision.id;
    item.querySelector(".parent").textContent = revision.parent_id;
    item.querySelector(".badge").textContent = InkWeb.capitalise(revision.status);
    const count = revision.corrections.length;
    item.querySelector(".count").textContent = `${count} region${count === 1 ? "" : "s"}`;
    item.querySelector(".who").textContent = revision.requested_by || "";
    ui.revisions.appendChild(item);
    wireRevisionItem(item);
  }

  // ------------------------------------------------------------------ start

  function attach(name, viewer) {
    if (state.viewers[name] === viewer) return;
    state.viewers[name] = viewer;
    state.pinned.forEach((runId) => drawOutlines(runId, [name]));
    if (name !== "restored" || !ui.form) return;
    // A layer over the image takes the drags, so the viewer's own tracker never pans under
    // them. Wheel events still reach the viewer, so it zooms while drawing.
    state.layer = document.createElement("div");
    state.layer.className = "correction-layer";
    state.layer.hidden = !state.drawing;
    viewer.canvas.appendChild(state.layer);
    new OpenSeadragon.MouseTracker({
      element: state.layer,
      preProcessEventHandler: (info) => {
        if (info.eventType !== "wheel") info.stopPropagation = true;
      },
      pressHandler: startDrag,
      dragHandler: moveDrag,
      releaseHandler: endDrag,
    });
  }

  document.addEventListener("inkweb:viewer-open", (event) => attach(event.detail.name, event.detail.viewer));
  ["original", "restored"].forEach((name) => {
    const viewer = window.inkwebViewer && window.inkwebViewer[name];
    if (imageItem(viewer)) attach(name, viewer);
  });

  if (ui.revisions) ui.revisions.querySelectorAll("li[data-run-id]").forEach(wireRevisionItem);

  if (ui.form) {
    settings.restoreMethods.forEach(({ value, label }) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      ui.method.appendChild(option);
    });
    ui.start.addEventListener("click", () => setDrawing(!state.drawing));
    ui.form.querySelectorAll('input[name="correction-action"]').forEach((radio) => {
      radio.addEventListener("change", () => chooseAction(radio.value));
    });
    ui.method.addEventListener("change", () => {
      // Picking a method means restoring with it.
      const restore = ui.form.querySelector('input[name="correction-action"][value="restore"]');
      restore.checked = true;
      chooseAction("restore");
    });
    ui.cancel.addEventListener("click", () => {
      clearRectangles();
      setDrawing(false);
      ui.form.hidden = true;
    });
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });

    document.addEventListener("keydown", (event) => {
      const target = event.target;
      const typing = target.closest && target.closest("input, textarea, select, [contenteditable]");
      if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "c") {
        event.preventDefault();
        setDrawing(!state.drawing);
      } else if (event.key === "Escape" && state.drawing) {
        setDrawing(false);
      }
    });
    render();
  }

  // Read by the browser tests and handy in the console.
  window.inkwebCorrections = {
    get drawing() { return state.drawing; },
    get rectangles() {
      return state.rectangles.map(({ x, y, width, height, action, method }) => ({ x, y, width, height, action, method }));
    },
    outlineCount(runId) { return (state.outlines[runId] || []).length; },
  };
})();
