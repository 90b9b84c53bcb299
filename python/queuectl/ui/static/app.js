// queuectl dashboard: the CSRF header on every htmx request, live refresh from the
// server's event stream, the throughput chart and a running job's output.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  document.body.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf;
  });

  var live = document.getElementById("live");
  var chart = null;
  var chartBox = document.getElementById("chart");

  function drawChart() {
    if (!chartBox || typeof uPlot === "undefined") return;
    fetch(chartBox.dataset.src, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d) return;
        var data = [d.minutes, d.completed, d.failed];
        if (chart) { chart.setData(data); return; }
        chart = new uPlot({
          width: Math.max(320, chartBox.clientWidth),
          height: 220,
          series: [
            {},
            { label: "completed", stroke: "#2b8a3e", width: 2, fill: "rgba(43,138,62,0.08)" },
            { label: "failed", stroke: "#c92a2a", width: 2 }
          ],
          axes: [{}, { label: "jobs/min" }],
          scales: { x: { time: true } }
        }, data, chartBox);
      })
      .catch(function () {});
  }

  var lastChart = 0;
  function refresh() {
    htmx.trigger(document.body, "qc-refresh");
    var now = Date.now();
    if (chartBox && now - lastChart > 5000) { lastChart = now; drawChart(); }
  }

  if (window.EventSource) {
    var events = new EventSource("/events");
    events.addEventListener("changed", refresh);
    events.onopen = function () { live.classList.add("on"); };
    events.onerror = function () { live.classList.remove("on"); };
  }
  drawChart();

  var out = document.getElementById("output");
  // The most characters of output the page keeps, the newest: a fast job's page must not
  // grow without end (the server sends at most 256 KiB a quarter of a second).
  var MAX_OUTPUT = 512 * 1024;
  if (out && window.EventSource) {
    var url = "/api/jobs/" + encodeURIComponent(out.dataset.job) + "/output";
    var stream = new EventSource(url);
    var kept = 0;
    var scrolling = false;
    stream.onmessage = function (e) {
      // Text, never markup: a job's output is shown as it is. Each event is a text node
      // of its own, so that an event adds to the page instead of replacing all of it.
      var text = JSON.parse(e.data);
      out.appendChild(document.createTextNode(text));
      kept += text.length;
      if (kept > MAX_OUTPUT) {
        while (out.firstChild && kept - out.firstChild.length >= MAX_OUTPUT) {
          kept -= out.firstChild.length;
          out.removeChild(out.firstChild);
        }
        // The rest of the excess is in the first node: cut it there, at a line's end.
        var first = out.firstChild;
        var nl = first.data.indexOf("\n", kept - MAX_OUTPUT);
        var cut = nl < 0 ? first.length : nl + 1;
        kept -= cut;
        first.data = first.data.slice(cut);
      }
      if (!scrolling) {
        scrolling = true;
        requestAnimationFrame(function () {
          scrolling = false;
          out.scrollTop = out.scrollHeight;
        });
      }
    };
    stream.addEventListener("end", function () {
      stream.close();
      out.dataset.ended = "1";
      refresh();
    });
  }
})();
