// pubsub-jobs dashboard: keeps the page current without a framework.
// Every data-refresh seconds it fetches this page again and swaps each [data-live] region
// for its new version, unless the person is busy in it (focus inside, a box ticked, a
// message opened) or paused the updates. The server escapes everything it renders, and
// nodes parsed by DOMParser never run scripts. Without JavaScript the pages still work.
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh")) || 0;
  var toggle = document.getElementById("refresh-toggle");
  var stamp = document.getElementById("updated");
  var paused = false;

  function busy(region) {
    var active = document.activeElement;
    return (active && active !== document.body && region.contains(active)) ||
      region.querySelector("input[type=checkbox]:checked, details[open]") !== null;
  }

  function refresh() {
    if (paused || document.hidden) { return; }
    fetch(window.location.href, {credentials: "same-origin", cache: "no-store",
                                 headers: {"Accept": "text/html"}})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var page = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          var fresh = page.getElementById(region.id);
          if (fresh && !busy(region)) { region.replaceWith(document.adoptNode(fresh)); }
        });
        var freshStamp = page.getElementById("updated");
        if (stamp && freshStamp) { stamp.textContent = freshStamp.textContent; }
      })
      .catch(function () { /* the next round tries again */ });
  }

  if (seconds > 0) {
    window.setInterval(refresh, seconds * 1000);
    if (toggle) {
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        paused = !paused;
        toggle.setAttribute("aria-pressed", String(paused));
        toggle.textContent = paused ? "Resume updates" : "Pause updates";
      });
    }
  }

  // "Select all on this page" of the dead set (each row's box has its own label).
  var selectPage = document.getElementById("select-page");
  if (selectPage) {
    selectPage.parentElement.hidden = false;
    selectPage.addEventListener("change", function () {
      document.querySelectorAll("input[type=checkbox][name=ids]").forEach(function (box) {
        box.checked = selectPage.checked;
      });
    });
  }
})();
