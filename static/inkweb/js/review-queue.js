/* Review queue mode of the viewer (opened with ?queue=1): the "Next slide" button, the n key,
   and opening the next queued slide once a decision is recorded. */
(function () {
  "use strict";

  const controls = document.getElementById("queue-controls");
  if (!controls) return;

  const nextButton = document.getElementById("queue-next");
  const { slideId, nextUrl, queueUrl } = controls.dataset;
  let leaving = false;

  async function openNextSlide() {
    if (leaving) return;
    leaving = true;
    nextButton.disabled = true;
    try {
      const result = await InkWeb.fetchJSON(`${nextUrl}?after=${encodeURIComponent(slideId)}`);
      window.location.href = result.next ? result.next.viewer_url : `${queueUrl}?done=1`;
    } catch (error) {
      InkWeb.toast(`The next slide could not be found: ${error.message}`, "error");
      leaving = false;
      nextButton.disabled = false;
    }
  }

  nextButton.addEventListener("click", openNextSlide);
  document.addEventListener("inkweb:review-recorded", openNextSlide);

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target.closest && target.closest("input, textarea, select, [contenteditable]");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "n") {
      event.preventDefault();
      openNextSlide();
    }
  });
})();
