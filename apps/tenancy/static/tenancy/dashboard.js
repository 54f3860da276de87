/* Usage dashboard: draws the per-day and per-service charts from the JSON the page embeds (Chart.js, vendored).
   Amounts arrive as exact decimal text; labels and tooltips are written as plain decimals, never with an exponent. */
(function () {
  "use strict";

  // "4.5e-7" -> "0.00000045", "012.500" -> "12.5": a plain decimal, made by moving digits (no float arithmetic).
  function plain(text) {
    var match = /^(-?)(\d+)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(String(text).trim());
    if (!match) {
      return String(text);
    }
    var digits = match[2] + (match[3] || "");
    var point = match[2].length + Number(match[4] || 0);
    if (point <= 0) {
      digits = "0".repeat(1 - point) + digits;
      point = 1;
    }
    if (point > digits.length) {
      digits += "0".repeat(point - digits.length);
    }
    var whole = digits.slice(0, point).replace(/^0+(?=\d)/, "");
    var fraction = digits.slice(point).replace(/0+$/, "");
    var sign = match[1] && /[1-9]/.test(digits) ? "-" : "";
    return sign + whole + (fraction ? "." + fraction : "");
  }

  // Thousands separated, with at least `decimals` decimals: grouped("1234.5", 2) is "1,234.50".
  function grouped(text, decimals) {
    var parts = plain(text).split(".");
    var fraction = parts[1] || "";
    while (fraction.length < (decimals || 0)) {
      fraction += "0";
    }
    var sign = parts[0].charAt(0) === "-" ? "-" : "";
    var whole = parts[0].replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return sign + whole + (fraction ? "." + fraction : "");
  }

  // A tick Chart.js computed is a binary float: twelve significant digits drop its artefacts (0.30000000000000004).
  function tickText(value) {
    return plain(Number(value).toPrecision(12));
  }

  function decimalsOf(text) {
    var point = text.indexOf(".");
    return point < 0 ? 0 : text.length - point - 1;
  }

  // Money axis: every label with the decimals its finest tick needs, and at least cents.
  function moneyTick(value, index, ticks) {
    var decimals = ticks.reduce(function (most, tick) {
      return Math.max(most, decimalsOf(tickText(tick.value)));
    }, 2);
    return grouped(tickText(value), decimals);
  }

  function countTick(value) {
    return grouped(tickText(value));
  }

  // Tooltips show the exact text the page was given (money) or the count, grouped.
  function tooltipLabel(context) {
    var exact = context.dataset.exact;
    var text = exact ? grouped(exact[context.dataIndex], 2) : grouped(String(context.raw));
    return context.dataset.label + ": " + text;
  }

  var countAxis = { beginAtZero: true, ticks: { precision: 0, callback: countTick } };
  var moneyAxis = { beginAtZero: true, ticks: { callback: moneyTick } };

  function draw() {
    var source = document.getElementById("dashboard-data");
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var styles = getComputedStyle(document.documentElement);
    var primary = (styles.getPropertyValue("--primary") || "#79aec8").trim();
    var accent = (styles.getPropertyValue("--accent") || "#f5dd5d").trim();
    var text = (styles.getPropertyValue("--body-quiet-color") || "#666").trim();
    window.Chart.defaults.color = text;
    window.Chart.defaults.animation = false;
    function options(scales, legend) {
      return {
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: legend }, tooltip: { callbacks: { label: tooltipLabel } } },
        scales: scales
      };
    }
    var labels = data.days.map(function (day) { return day.slice(5); });

    new window.Chart(document.getElementById("chart-requests"), {
      type: "bar",
      data: { labels: labels, datasets: [{ label: "Requests", data: data.requests, backgroundColor: primary }] },
      options: options({ y: countAxis }, false)
    });
    new window.Chart(document.getElementById("chart-spend"), {
      type: "line",
      data: {
        labels: labels,
        datasets: [{
          label: "Spend (USD)", data: data.spend.map(Number), exact: data.spend,
          borderColor: primary, backgroundColor: accent, fill: false, tension: 0.2
        }]
      },
      options: options({ y: moneyAxis }, false)
    });
    var servicesCanvas = document.getElementById("chart-services");
    if (servicesCanvas && data.services.length) {
      var spend = data.services.map(function (s) { return s.spend; });
      new window.Chart(servicesCanvas, {
        type: "bar",
        data: {
          labels: data.services.map(function (s) { return s.service; }),
          datasets: [
            {
              label: "Requests", data: data.services.map(function (s) { return s.requests; }),
              backgroundColor: primary, yAxisID: "y", maxBarThickness: 64
            },
            {
              label: "Spend (USD)", data: spend.map(Number), exact: spend,
              backgroundColor: accent, yAxisID: "spend", maxBarThickness: 64
            }
          ]
        },
        options: options({
          y: Object.assign({ position: "left" }, countAxis),
          spend: Object.assign({ position: "right", grid: { drawOnChartArea: false } }, moneyAxis)
        }, true)
      });
    }
    document.documentElement.setAttribute("data-dashboard-ready", "1");
  }

  var picker = document.getElementById("id_tenant");
  if (picker) {
    picker.addEventListener("change", function () { picker.form.submit(); });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
