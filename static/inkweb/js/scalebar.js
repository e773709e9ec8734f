/* Scale bar overlay for an OpenSeadragon viewer, computed from the slide's µm per pixel. */
(function () {
  "use strict";

  const TARGET_WIDTH_PX = 120;

  /** Largest 1, 2 or 5 times a power of ten that is not above `value`. */
  function niceLength(value) {
    const power = 10 ** Math.floor(Math.log10(value));
    const mantissa = value / power;
    if (mantissa >= 5) return 5 * power;
    if (mantissa >= 2) return 2 * power;
    return power;
  }

  function formatLength(micrometres) {
    if (micrometres >= 1000) return `${+(micrometres / 1000).toPrecision(3)} mm`;
    if (micrometres >= 1) return `${+micrometres.toPrecision(3)} µm`;
    return `${+(micrometres * 1000).toPrecision(3)} nm`;
  }

  class ScaleBar {
    /**
     * @param viewer OpenSeadragon viewer whose first world item is the slide
     * @param mpp micrometres per level-0 pixel, or null when the file has no resolution
     */
    constructor(viewer, mpp) {
      this.viewer = viewer;
      this.mpp = mpp;
      this.element = document.createElement("div");
      this.element.className = "scalebar";
      this.label = document.createElement("div");
      this.line = document.createElement("div");
      this.line.className = "scalebar-line";
      this.element.append(this.label, this.line);
      viewer.container.appendChild(this.element);
      if (!mpp) {
        this.element.classList.add("unknown");
        this.label.textContent = "No scale: resolution unknown";
        this.line.hidden = true;
        return;
      }
      const update = () => this.update();
      ["open", "animation", "resize", "update-viewport"].forEach((name) => viewer.addHandler(name, update));
    }

    update() {
      const item = this.viewer.world.getItemAt(0);
      if (!item) return;
      // Image zoom is screen (CSS) pixels per level-0 image pixel.
      const imageZoom = item.viewportToImageZoom(this.viewer.viewport.getZoom(true));
      if (!(imageZoom > 0)) return;
      const micrometresPerScreenPixel = this.mpp / imageZoom;
      const length = niceLength(TARGET_WIDTH_PX * micrometresPerScreenPixel);
      this.line.style.width = `${Math.round(length / micrometresPerScreenPixel)}px`;
      this.label.textContent = formatLength(length);
    }
  }

  window.InkWebScaleBar = ScaleBar;
})();
