/* Helpers shared by the pages: CSRF-aware fetch, toasts and the live progress feed. */
(function () {
  "use strict";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /** Error carrying the API's {detail, code} and the HTTP status. */
  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Fetch JSON from the API. A non-2xx response raises ApiError with the server's detail. */
  async function fetchJSON(url, options = {}) {
    const method = (options.method || "GET").toUpperCase();
    const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    let body = options.body;
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    if (method !== "GET" && method !== "HEAD") {
      headers["X-CSRFToken"] = csrfToken();
    }
    const response = await fetch(url, { method, headers, body, credentials: "same-origin" });
    if (response.status === 204) {
      return null;
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (error) {
      payload = null;
    }
    if (!response.ok) {
      const detail = payload && payload.detail ? payload.detail : `Request failed with status ${response.status}.`;
      throw new ApiError(detail, response.status, payload && payload.code);
    }
    return payload;
  }

  let toastTimer = null;
  /** Show a short message in the bottom-right corner. */
  function toast(message, kind) {
    let element = document.querySelector(".toast");
    if (!element) {
      element = document.createElement("div");
      element.className = "toast";
      element.setAttribute("role", "status");
      document.body.appendChild(element);
    }
    element.textContent = message;
    element.classList.toggle("error", kind === "error");
    element.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { element.hidden = true; }, kind === "error" ? 8000 : 4000);
  }

  /**
   * Live events from /ws/progress/, falling back to polling while the socket is down.
   *
   * onEvent receives {event: "run", run: {...}} or {event: "slide", slide_id}.
   * poll is an async function the page provides; it runs every pollIntervalMs while
   * the socket is not open, and the socket is retried every reconnectMs.
   */
  class ProgressFeed {
    constructor({ slideId = null, onEvent, poll, onModeChange = () => {}, pollIntervalMs = 2500, reconnectMs = 15000 }) {
      this.slideId = slideId;
      this.onEvent = onEvent;
      this.poll = poll;
      this.onModeChange = onModeChange;
      this.pollIntervalMs = pollIntervalMs;
      this.reconnectMs = reconnectMs;
      this.socket = null;
      this.pollTimer = null;
      this.reconnectTimer = null;
      this.mode = "connecting";
    }

    start() {
      this.connect();
    }

    setMode(mode) {
      if (this.mode !== mode) {
        this.mode = mode;
        this.onModeChange(mode);
      }
    }

    connect() {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const query = this.slideId ? `?slide=${this.slideId}` : "";
      let socket;
      try {
        socket = new WebSocket(`${scheme}//${window.location.host}/ws/progress/${query}`);
      } catch (error) {
        this.fallBack();
        return;
      }
      this.socket = socket;
      socket.onopen = () => {
        this.stopPolling();
        this.setMode("live");
        // Catch up on anything that happened while the socket was down.
        this.poll().catch(() => {});
      };
      socket.onmessage = (message) => {
        try {
          this.onEvent(JSON.parse(message.data));
        } catch (error) {
          console.warn("Ignoring malformed progress message", error);
        }
      };
      socket.onclose = () => {
        this.socket = null;
        this.fallBack();
      };
    }

    fallBack() {
      this.setMode("polling");
      if (!this.pollTimer) {
        this.pollTimer = setInterval(() => this.poll().catch(() => {}), this.pollIntervalMs);
        this.poll().catch(() => {});
      }
      if (!this.reconnectTimer) {
        this.reconnectTimer = setTimeout(() => {
          this.reconnectTimer = null;
          this.connect();
        }, this.reconnectMs);
      }
    }

    stopPolling() {
      clearInterval(this.pollTimer);
      this.pollTimer = null;
    }
  }

  function percent(fraction) {
    return Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
  }

  function capitalise(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
  }

  window.InkWeb = { ApiError, fetchJSON, toast, ProgressFeed, csrfToken, percent, capitalise };
})();
