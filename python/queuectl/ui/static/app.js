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
  var MAX_OUTPUT = 1024 * 1024;
  if (out && window.EventSource) {
    var url = "/api/jobs/" + encodeURIComponent(out.dataset.job) + "/output";
    var stream = new EventSource(url);
    stream.onmessage = function (e) {
      // Text, never markup: a job's output is shown as it is. The newest MAX_OUTPUT
      // characters stay, from a line's start: a fast job's page must not grow forever.
      var text = out.textContent + JSON.parse(e.data);
      if (text.length > MAX_OUTPUT) {
        var cut = text.indexOf("\n", text.length - MAX_OUTPUT);
        text = text.slice(cut < 0 ? text.length - MAX_OUTPUT : cut + 1);
      }
      out.textContent = text;
      out.scrollTop = out.scrollHeight;
    };
    stream.addEventListener("end", function () {
      stream.close();
      out.dataset.ended = "1";
      refresh();
    });
  }
})();
