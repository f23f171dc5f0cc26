// Live refresh: fetch the page again every few seconds and swap in its #live
// part, so counts move without a reload. Forms live outside #live, so typing
// in a filter is never interrupted. No framework, nothing fetched from elsewhere.
(function () {
  "use strict";
  var seconds = parseFloat(document.body.dataset.refresh || "0");
  var live = document.getElementById("live");
  var stamp = document.getElementById("updated");

  document.addEventListener("submit", function (event) {
    var question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  if (!live || !(seconds > 0)) {
    return;
  }
  var busy = false;
  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(window.location.href, { headers: { "X-Que-Live": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("live");
        if (fresh) {
          live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes));
          live.dataset.refreshed = String(Date.now());
        }
        if (stamp) {
          stamp.textContent = "updated " + new Date().toLocaleTimeString();
          stamp.classList.remove("stale");
        }
      })
      .catch(function (error) {
        if (stamp) {
          stamp.textContent = "not updated: " + error.message;
          stamp.classList.add("stale");
        }
      })
      .finally(function () {
        busy = false;
      });
  }
  window.setInterval(refresh, seconds * 1000);
})();
