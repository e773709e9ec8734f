/* Slide viewer: synchronised original/restored OpenSeadragon viewers, ink-mask overlay,
   deep links, keyboard shortcuts, run controls and the review panel. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("viewer-config").textContent);
  const byId = (id) => document.getElementById(id);
  const ACTIVE = ["queued", "running"];

  // ------------------------------------------------------------------ run controls

  const runUi = {
    badge: byId("run-badge"),
    progress: byId("run-progress"),
    text: byId("run-text"),
    start: byId("run-start"),
    method: byId("run-method"),
    methodLabel: byId("run-method-label"),
    cancel: byId("run-cancel"),
    retry: byId("run-retry"),
  };
  let currentRun = config.latestRun;

  function renderRun(run) {
    currentRun = run;
    const active = run && ACTIVE.includes(run.status);
    if (runUi.start) runUi.start.hidden = !config.ready || active;
    if (runUi.methodLabel) runUi.methodLabel.hidden = !config.ready || active;
    if (runUi.cancel) runUi.cancel.hidden = !active;
    if (runUi.retry) runUi.retry.hidden = !(run && ["failed", "cancelled"].includes(run.status));
    if (!run) {
      runUi.badge.hidden = true;
      runUi.progress.hidden = true;
      runUi.text.textContent = "";
      return;
    }
    runUi.badge.hidden = false;
    runUi.badge.className = `badge run-${run.status}`;
    runUi.badge.textContent = `Run #${run.id} · ${run.status}`;
    runUi.progress.hidden = !active;
    const pct = InkWeb.percent(run.progress);
    runUi.progress.querySelector(".bar").style.width = `${pct}%`;
    runUi.progress.setAttribute("aria-valuenow", String(pct));
    runUi.text.classList.toggle("error", run.status === "failed");
    if (active) {
      runUi.text.textContent = `${pct}%${run.stage ? ` · ${run.stage}` : ""}${run.message ? ` · ${run.message}` : ""}`;
    } else if (run.status === "failed") {
      runUi.text.textContent = run.error || "The run failed.";
    } else {
      runUi.text.textContent = run.message || "";
    }
  }

  function reloadKeepingPosition(runId) {
    const url = new URL(window.location.href);
    if (runId) url.searchParams.set("run", runId);
    window.location.replace(url.toString());
  }

  function listRun(run) {
    const list = byId("run-list");
    if (!list) return;
    let item = list.querySelector(`li[data-run-id="${run.id}"]`);
    if (!item) {
      const empty = list.querySelector(".empty-runs");
      if (empty) empty.remove();
      item = document.createElement("li");
      item.dataset.runId = run.id;
      item.innerHTML = '#<span class="run-number"></span> <span class="badge"></span> <span class="muted small">just now</span>';
      item.querySelector(".run-number").textContent = run.id;
      list.prepend(item);
    }
    const badge = item.querySelector(".badge");
    badge.className = `badge run-${run.status}`;
    badge.textContent = InkWeb.capitalise(run.status);
  }

  function onRunUpdate(run) {
    if (currentRun && run.id < currentRun.id) return;
    const finishedNow = run.status === "succeeded" && !(currentRun && currentRun.id === run.id && currentRun.status === "succeeded");
    const statusChanged = !currentRun || currentRun.id !== run.id || currentRun.status !== run.status;
    renderRun(run);
    listRun(run);
    if (statusChanged) refreshSlide().catch(() => {});
    if (finishedNow && config.ready) {
      InkWeb.toast(`Run #${run.id} finished; loading the restored slide.`);
      setTimeout(() => reloadKeepingPosition(run.id), 800);
    }
  }

  async function runAction(button, url, body = {}) {
    button.disabled = true;
    try {
      const run = await InkWeb.fetchJSON(url, { method: "POST", body });
      renderRun(run);
    } catch (error) {
      InkWeb.toast(error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  const runDetailUrl = (runId) => config.urls.runDetail.replace("/0/", `/${runId}/`);
  if (runUi.start) {
    runUi.start.addEventListener("click", () => runAction(runUi.start, config.urls.runs,
      runUi.method ? { options: { restore_method: runUi.method.value } } : {}));
  }
  if (runUi.cancel) runUi.cancel.addEventListener("click", () => runAction(runUi.cancel, `${runDetailUrl(currentRun.id)}cancel/`));
  if (runUi.retry) runUi.retry.addEventListener("click", () => runAction(runUi.retry, `${runDetailUrl(currentRun.id)}retry/`));
  renderRun(currentRun);

  async function refreshSlide() {
    const slide = await InkWeb.fetchJSON(config.urls.slide);
    if (!config.ready && slide.ingest_status !== "pending") {
      window.location.reload();
      return;
    }
    const badge = byId("slide-state");
    if (badge) {
      badge.className = `badge state-${slide.state}`;
      badge.textContent = config.stateLabels[slide.state] || slide.state;
    }
    const latest = slide.latest_run;
    const changed = latest && (!currentRun || currentRun.id !== latest.id || currentRun.status !== latest.status
      || currentRun.progress !== latest.progress);
    if (changed) onRunUpdate(Object.assign({ slide_id: slide.id }, latest));
  }

  new InkWeb.ProgressFeed({
    slideId: config.slideId,
    onEvent(message) {
      if (message.event === "run") onRunUpdate(message.run);
      if (message.event === "slide") refreshSlide().catch(() => {});
    },
    poll: refreshSlide,
  }).start();

  const deleteButton = byId("slide-delete");
  if (deleteButton) {
    deleteButton.addEventListener("click", async () => {
      if (!window.confirm("Delete this slide and its stored file?")) return;
      try {
        await InkWeb.fetchJSON(config.urls.slide, { method: "DELETE" });
        window.location.href = "/";
      } catch (error) {
        InkWeb.toast(error.message, "error");
      }
    });
  }

  if (!config.ready || typeof OpenSeadragon === "undefined") return;

  // ------------------------------------------------------------------ viewers

  async function tileSource(infoUrl) {
    const info = await InkWeb.fetchJSON(infoUrl);
    return {
      info,
      source: {
        width: info.sizeX,
        height: info.sizeY,
        tileWidth: info.tileWidth,
        tileHeight: info.tileHeight,
        // large-image numbers levels from 0 (lowest resolution) to levels - 1 (full
        // resolution), halving each time: the same numbering as OpenSeadragon's.
        minLevel: 0,
        maxLevel: info.levels - 1,
        getTileUrl(level, x, y) {
          return info.tile_url_template.replace("{z}", level).replace("{x}", x).replace("{y}", y);
        },
      },
    };
  }

  function createViewer(elementId, source) {
    return OpenSeadragon({
      id: elementId,
      prefixUrl: config.urls.osdImages,
      tileSources: source,
      drawer: "canvas",
      showNavigator: true,
      navigatorPosition: "BOTTOM_RIGHT",
      navigatorSizeRatio: 0.16,
      navigatorAutoFade: false,
      showRotationControl: false,
      showFullPageControl: false,
      showHomeControl: true,
      keyboardNavEnabled: false,
      visibilityRatio: 0.3,
      constrainDuringPan: false,
      minZoomImageRatio: 0.6,
      maxZoomPixelRatio: 4,
      animationTime: 0.5,
      timeout: 60000,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
    });
  }

  const sync = { enabled: true, guard: false, leader: null };
  const mask = { item: null, visible: false, toggle: byId("mask-toggle"), slider: byId("mask-opacity") };
  let original = null;
  let restored = null;

  function imageView(viewer) {
    const item = viewer && viewer.world.getItemAt(0);
    if (!item) return null;
    return {
      center: item.viewportToImageCoordinates(viewer.viewport.getCenter(true)),
      zoom: item.viewportToImageZoom(viewer.viewport.getZoom(true)),
    };
  }

  function applyImageView(viewer, view, immediately) {
    const item = viewer && viewer.world.getItemAt(0);
    if (!item || !view) return;
    viewer.viewport.zoomTo(item.imageToViewportZoom(view.zoom), null, immediately);
    viewer.viewport.panTo(item.imageToViewportCoordinates(view.center.x, view.center.y), immediately);
  }

  function follow(source, target) {
    // The viewer the user last touched leads; the guard drops the echo of our own move.
    if (!sync.enabled || sync.guard || !target) return;
    if (sync.leader && sync.leader !== source) return;
    sync.guard = true;
    try {
      applyImageView(target, imageView(source), true);
    } finally {
      sync.guard = false;
    }
  }

  function trackLeader(viewer) {
    const lead = () => { sync.leader = viewer; };
    ["canvas-press", "canvas-scroll", "canvas-drag", "navigator-click", "navigator-drag", "navigator-scroll"]
      .forEach((name) => viewer.addHandler(name, lead));
    viewer.element.addEventListener("pointerenter", lead);
  }

  function writeHash(viewer) {
    const view = imageView(viewer);
    if (!view) return;
    const hash = `#x=${Math.round(view.center.x)}&y=${Math.round(view.center.y)}&zoom=${+view.zoom.toPrecision(4)}`;
    if (window.location.hash !== hash) history.replaceState(null, "", hash);
  }

  function readHash() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const x = parseFloat(params.get("x"));
    const y = parseFloat(params.get("y"));
    const zoom = parseFloat(params.get("zoom"));
    if (![x, y, zoom].every(Number.isFinite) || zoom <= 0) return null;
    return { center: { x, y }, zoom };
  }

  function wire(viewer, other) {
    trackLeader(viewer);
    viewer.addHandler("viewport-change", () => follow(viewer, other()));
    viewer.addHandler("animation-finish", () => {
      if (!sync.leader || sync.leader === viewer) writeHash(viewer);
    });
  }

  function setMaskVisible(visible) {
    if (!mask.item) return;
    mask.visible = visible;
    mask.toggle.checked = visible;
    mask.item.setOpacity(visible ? mask.slider.value / 100 : 0);
  }

  async function addMask() {
    const { source } = await tileSource(config.urls.maskInfo + `?run=${config.viewedRunId}`);
    const base = restored.world.getItemAt(0);
    const bounds = base.getBounds();
    restored.addTiledImage({
      tileSource: source,
      x: bounds.x,
      y: bounds.y,
      width: bounds.width,
      opacity: 0,
      success(event) {
        mask.item = event.item;
        setMaskVisible(mask.toggle.checked);
      },
      error(event) {
        InkWeb.toast(`The ink mask could not be loaded: ${event.message}`, "error");
      },
    });
  }

  async function start() {
    const originalSource = await tileSource(config.urls.originalInfo);
    original = createViewer("viewer-original", originalSource.source);
    new window.InkWebScaleBar(original, config.mppX);
    wire(original, () => restored);
    original.addHandler("open", () => {
      const view = readHash();
      if (view) applyImageView(original, view, true);
      if (restored) applyImageView(restored, imageView(original), true);
      announceViewer("original", original);
    });

    if (config.viewedRunId) {
      const restoredSource = await tileSource(config.urls.restoredInfo + `?run=${config.viewedRunId}`);
      restored = createViewer("viewer-restored", restoredSource.source);
      new window.InkWebScaleBar(restored, config.mppX);
      wire(restored, () => original);
      restored.addHandler("open", () => {
        applyImageView(restored, imageView(original), true);
        addMask().catch((error) => InkWeb.toast(error.message, "error"));
        announceViewer("restored", restored);
      });
      mask.toggle.addEventListener("change", () => setMaskVisible(mask.toggle.checked));
      mask.slider.addEventListener("input", () => setMaskVisible(mask.visible));
    }
  }

  // Other scripts (comments.js) draw on a viewer after this event reports that its image opened.
  function announceViewer(name, viewer) {
    document.dispatchEvent(new CustomEvent("inkweb:viewer-open", { detail: { name, viewer } }));
  }

  start().catch((error) => InkWeb.toast(`The viewer could not start: ${error.message}`, "error"));

  function setSync(enabled) {
    sync.enabled = enabled;
    const label = byId("sync-state");
    label.textContent = enabled ? "on" : "off";
    label.className = enabled ? "sync-on" : "sync-off";
    if (enabled && original && restored) {
      const leader = sync.leader || original;
      follow(leader, leader === original ? restored : original);
    }
  }

  // ------------------------------------------------------------------ review panel

  const reviewForm = byId("review-form");
  const reviewSubmit = byId("review-submit");
  const reviewError = byId("review-error");

  function chooseDecision(decision) {
    if (!reviewForm) return;
    const radio = reviewForm.querySelector(`input[name="decision"][value="${decision}"]`);
    radio.checked = true;
    reviewSubmit.disabled = false;
    byId("review-note").focus();
  }

  const DECISION_LABELS = { approve: "Approved", reject: "Rejected", rework: "Needs rework" };

  function historyItem(review) {
    const item = document.createElement("li");
    const when = new Date(review.created_at);
    const label = DECISION_LABELS[review.decision] || review.decision;
    item.innerHTML = `<div><span class="badge decision-${review.decision}">${label}</span> <strong></strong>
      <span class="muted small">run #${review.run_id} · <time></time></span></div>`;
    item.querySelector("strong").textContent = review.reviewer;
    const time = item.querySelector("time");
    time.dateTime = review.created_at;
    time.title = when.toISOString();
    time.textContent = "just now";
    if (review.note) {
      const note = document.createElement("p");
      note.className = "note";
      note.textContent = review.note;
      item.appendChild(note);
    }
    return item;
  }

  async function submitReview() {
    const decision = reviewForm.querySelector('input[name="decision"]:checked');
    if (!decision) return;
    reviewSubmit.disabled = true;
    reviewError.hidden = true;
    try {
      const review = await InkWeb.fetchJSON(config.urls.reviews, {
        method: "POST",
        body: { decision: decision.value, note: byId("review-note").value, run: config.viewedRunId },
      });
      const history = byId("review-history");
      const empty = history.querySelector(".empty-history");
      if (empty) empty.remove();
      history.prepend(historyItem(review));
      reviewForm.reset();
      InkWeb.toast(`Decision recorded: ${(DECISION_LABELS[review.decision] || review.decision).toLowerCase()}.`);
      refreshSlide().catch(() => {});
      // review-queue.js opens the next slide when the page is in queue mode.
      document.dispatchEvent(new CustomEvent("inkweb:review-recorded", { detail: review }));
    } catch (error) {
      reviewError.textContent = error.message;
      reviewError.hidden = false;
      reviewSubmit.disabled = false;
    }
  }

  if (reviewForm) {
    reviewForm.addEventListener("change", () => { reviewSubmit.disabled = !reviewForm.querySelector('input[name="decision"]:checked'); });
    reviewForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submitReview();
    });
  }

  // ------------------------------------------------------------------ keyboard

  function zoomBy(factor) {
    const viewer = sync.leader || original;
    if (!viewer) return;
    sync.leader = viewer;
    viewer.viewport.zoomBy(factor);
    viewer.viewport.applyConstraints();
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target.closest && target.closest("input, textarea, select, [contenteditable]");
    const inReviewForm = reviewForm && reviewForm.contains(target);
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && reviewForm && (!typing || inReviewForm)) {
      event.preventDefault();
      submitReview();
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;

    const actions = {
      m: () => setMaskVisible(!mask.visible),
      s: () => setSync(!sync.enabled),
      a: () => chooseDecision("approve"),
      r: () => chooseDecision("reject"),
      w: () => chooseDecision("rework"),
      "+": () => zoomBy(1.5),
      "=": () => zoomBy(1.5),
      "-": () => zoomBy(1 / 1.5),
      0: () => { (sync.leader || original).viewport.goHome(); },
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  // Read by the browser tests and handy in the console.
  window.inkwebViewer = {
    get original() { return original; },
    get restored() { return restored; },
    get mask() { return mask; },
    sync,
    imageView,
    // corrections.js shows a revision it has just queued like any run of the slide.
    showRun: onRunUpdate,
  };
})();
