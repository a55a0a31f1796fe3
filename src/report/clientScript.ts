/**
 * The page script: turns the embedded chart specs (chartSpecs.ts) into
 * Chart.js charts. It is plain ES5-style JavaScript in a string because it
 * runs in the report page, not in Node; test/report/report.browser.test.ts
 * executes it in Chromium. No template literals or "${" inside: this is a
 * String.raw template.
 *
 * Contract with the test: after every chart exists, window.__moefarmCharts is
 * [{id, kind, series, points: [points per dataset], datasets: [labels],
 * scales: {axis id: {type, title, min, max}}}] read back from the live Chart instances
 * (the axis type Chart.js built, the title it shows), and
 * document.body.dataset.ready === "1". A chart that
 * fails to build is reported with console.error (which fails the test) and
 * the rest still render.
 */
export const CLIENT_SCRIPT = String.raw`
(function () {
  'use strict';
  // Okabe-Ito: distinguishable with the common colour-vision deficiencies.
  var PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#8C6D1F', '#000000'];
  var VERDICT_COLOURS = { FASTER: '#1a9850', SLOWER: '#d73027', SAME: '#6b6b6b', UNSURE: '#e0a100' };
  function colour(i) { return PALETTE[i % PALETTE.length]; }
  function rgba(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + ((n >> 16) & 255) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }
  function fmt(v) {
    if (v === null || v === undefined) return 'n/a';
    var a = Math.abs(v);
    return a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : a >= 10 ? v.toFixed(2) : v.toFixed(3);
  }
  function padRange(lo, hi, minPad) {
    var pad = Math.max((hi - lo) * 0.06, minPad);
    return { min: lo - pad, max: hi + pad };
  }
  function line(ctx, x1, y1, x2, y2) { ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke(); }

  var specs = JSON.parse(document.getElementById('moefarm-charts').textContent);
  var specById = {};
  specs.forEach(function (s) { specById[s.id] = s; });

  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = '#222';

  // Whiskers and median line of each box; the box itself is a floating bar [q1, q3].
  var boxPlugin = {
    id: 'moefarmBox',
    afterDatasetsDraw: function (chart) {
      var spec = specById[chart.canvas.id];
      var meta = chart.getDatasetMeta(0);
      var y = chart.scales.y;
      var ctx = chart.ctx;
      ctx.save();
      spec.boxes.forEach(function (b, i) {
        var bar = meta.data[i];
        if (!bar) return;
        var x = bar.x, half = bar.width / 2, cap = half / 2;
        ctx.strokeStyle = '#333';
        ctx.lineWidth = 1.5;
        line(ctx, x, y.getPixelForValue(b.q3), x, y.getPixelForValue(b.hi));
        line(ctx, x, y.getPixelForValue(b.q1), x, y.getPixelForValue(b.lo));
        line(ctx, x - cap, y.getPixelForValue(b.hi), x + cap, y.getPixelForValue(b.hi));
        line(ctx, x - cap, y.getPixelForValue(b.lo), x + cap, y.getPixelForValue(b.lo));
        ctx.strokeStyle = '#000';
        ctx.lineWidth = 2.5;
        line(ctx, x - half, y.getPixelForValue(b.median), x + half, y.getPixelForValue(b.median));
      });
      ctx.restore();
    }
  };

  // CI interval of each speedup bar, and the reference line at 1.0.
  var speedupPlugin = {
    id: 'moefarmSpeedup',
    afterDatasetsDraw: function (chart) {
      var spec = specById[chart.canvas.id];
      var meta = chart.getDatasetMeta(0);
      var x = chart.scales.x;
      var area = chart.chartArea;
      var ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = '#000';
      ctx.lineWidth = 1;
      ctx.setLineDash([5, 4]);
      var one = x.getPixelForValue(1);
      line(ctx, one, area.top, one, area.bottom);
      ctx.setLineDash([]);
      ctx.lineWidth = 1.8;
      spec.lo.forEach(function (lo, i) {
        var bar = meta.data[i];
        if (!bar) return;
        var yy = bar.y, cap = Math.max(4, bar.height / 3);
        var a = x.getPixelForValue(lo), b = x.getPixelForValue(spec.hi[i]);
        line(ctx, a, yy, b, yy);
        line(ctx, a, yy - cap, a, yy + cap);
        line(ctx, b, yy - cap, b, yy + cap);
      });
      ctx.restore();
    }
  };

  // Latencies are positive: a linear axis starts at 0 at the lowest (padding never takes it negative);
  // a log axis (values spanning more than a decade) gets a little room beyond the data by ratio.
  function latencyRange(scale, lo, hi) {
    if (scale === 'logarithmic') return { min: lo / 1.15, max: hi * 1.15 };
    var r = padRange(lo, hi, Math.abs(hi) * 0.01 || 1);
    return { min: Math.max(0, r.min), max: r.max };
  }

  function boxConfig(spec) {
    var lo = Infinity, hi = -Infinity;
    spec.boxes.forEach(function (b) { lo = Math.min(lo, b.lo); hi = Math.max(hi, b.hi); });
    spec.outliers.forEach(function (o) { lo = Math.min(lo, o.y); hi = Math.max(hi, o.y); });
    var range = latencyRange(spec.scale, lo, hi);
    var colours = spec.labels.map(function (_, i) { return colour(i); });
    return {
      type: 'bar',
      data: {
        labels: spec.labels,
        datasets: [
          {
            type: 'bar',
            label: 'p25-p75 box, median line, whiskers to 1.5 IQR',
            data: spec.boxes.map(function (b) { return [b.q1, b.q3]; }),
            backgroundColor: colours.map(function (c) { return rgba(c, 0.35); }),
            borderColor: colours,
            borderWidth: 1.5,
            borderSkipped: false,
            barPercentage: 0.5,
            categoryPercentage: 0.9
          },
          {
            type: 'scatter',
            label: 'outliers',
            data: spec.outliers,
            pointRadius: 2.5,
            pointBackgroundColor: 'rgba(0,0,0,0.45)',
            pointBorderWidth: 0
          }
        ]
      },
      options: {
        plugins: {
          title: { display: true, text: spec.title },
          legend: { display: true, position: 'bottom', labels: { boxWidth: 12 } },
          tooltip: {
            callbacks: {
              label: function (item) {
                if (item.datasetIndex !== 0) return 'outlier ' + fmt(item.parsed.y) + ' ' + spec.unit;
                var b = spec.boxes[item.dataIndex];
                return ['median ' + fmt(b.median) + ' ' + spec.unit, 'p25-p75 ' + fmt(b.q1) + ' - ' + fmt(b.q3),
                  'whiskers ' + fmt(b.lo) + ' - ' + fmt(b.hi), 'mean ' + fmt(b.mean) + ', n=' + b.n];
              }
            }
          }
        },
        scales: {
          x: { type: 'category' },
          y: { type: spec.scale, beginAtZero: false, min: range.min, max: range.max, title: { display: true, text: 'latency (' + spec.unit + ')' + (spec.scale === 'logarithmic' ? ', log scale' : '') } }
        }
      },
      plugins: [boxPlugin]
    };
  }

  function speedupConfig(spec) {
    var lo = 1, hi = 1;
    spec.lo.forEach(function (v) { lo = Math.min(lo, v); });
    spec.hi.forEach(function (v) { hi = Math.max(hi, v); });
    spec.speedup.forEach(function (v) { lo = Math.min(lo, v); hi = Math.max(hi, v); });
    var range = padRange(lo, hi, 0.02);
    var colours = spec.verdicts.map(function (v) { return VERDICT_COLOURS[v] || '#999999'; });
    return {
      type: 'bar',
      data: {
        labels: spec.labels.map(function (l, i) { return l + '  [' + spec.verdicts[i] + ']'; }),
        datasets: [{
          label: 'speedup',
          data: spec.speedup.map(function (s) { return [1, s]; }),
          backgroundColor: colours.map(function (c) { return rgba(c, 0.55); }),
          borderColor: colours,
          borderWidth: 1,
          borderSkipped: false,
          barPercentage: 0.6
        }]
      },
      options: {
        indexAxis: 'y',
        plugins: {
          title: { display: true, text: spec.title + ' (bar from 1.0 to the estimate; line: confidence interval)' },
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (item) {
                var i = item.dataIndex;
                return fmt(spec.speedup[i]) + 'x, CI [' + fmt(spec.lo[i]) + ', ' + fmt(spec.hi[i]) + '], ' + spec.verdicts[i];
              }
            }
          }
        },
        scales: {
          x: { beginAtZero: false, suggestedMin: range.min, suggestedMax: range.max, title: { display: true, text: 'speedup (baseline latency / variant latency; > 1 is faster)' } },
          y: { ticks: { autoSkip: false } }
        }
      },
      plugins: [speedupPlugin]
    };
  }

  function telemetryConfig(spec) {
    var scales = { x: { type: 'linear', title: { display: true, text: 'time (ms)' } } };
    spec.metrics.forEach(function (m, i) {
      scales[m.key] = {
        type: 'linear',
        position: i === 0 ? 'left' : 'right',
        title: { display: true, text: m.label, color: colour(i) },
        ticks: { color: colour(i) },
        grid: { drawOnChartArea: i === 0 }
      };
    });
    return {
      type: 'line',
      data: {
        datasets: spec.metrics.map(function (m, i) {
          return {
            label: m.label,
            yAxisID: m.key,
            data: spec.t_ms.map(function (t, j) { return { x: t, y: m.values[j] }; }),
            borderColor: colour(i),
            backgroundColor: colour(i),
            borderWidth: 1.5,
            pointRadius: spec.t_ms.length > 80 ? 0 : 2,
            spanGaps: false
          };
        })
      },
      options: {
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        plugins: { title: { display: true, text: spec.title }, legend: { position: 'bottom' } },
        scales: scales
      }
    };
  }

  // The y axis spans at least 10% of the level: auto-scaling would blow a
  // 0.3% wiggle between builds up into what looks like a cliff.
  // Per variant: the p10-p90 band (two edge lines, the area between filled), the medians, and a
  // triangle where a step was detected (up: REGRESSION, down: IMPROVEMENT).
  function historyConfig(spec) {
    var lo = Infinity, hi = -Infinity;
    spec.series.forEach(function (s) {
      s.p10.forEach(function (p) { lo = Math.min(lo, p.y); });
      s.p90.forEach(function (p) { hi = Math.max(hi, p.y); });
      s.points.forEach(function (p) { lo = Math.min(lo, p.y); hi = Math.max(hi, p.y); });
    });
    var minSpan = 0.1 * Math.max(Math.abs(lo), Math.abs(hi));
    if (spec.scale !== 'logarithmic' && hi - lo < minSpan) { var mid = (hi + lo) / 2; lo = mid - minSpan / 2; hi = mid + minSpan / 2; }
    var range = latencyRange(spec.scale, lo, hi);
    var datasets = [];
    spec.series.forEach(function (s, i) {
      var c = colour(i);
      datasets.push({ label: s.variant + ' p10', data: s.p10, borderColor: rgba(c, 0.35), borderWidth: 1, pointRadius: 0, fill: false });
      datasets.push({ label: s.variant + ' p10-p90', data: s.p90, borderColor: rgba(c, 0.35), borderWidth: 1, pointRadius: 0, backgroundColor: rgba(c, 0.15), fill: '-1' });
      datasets.push({ label: s.variant + ' median', data: s.points, borderColor: c, backgroundColor: c, borderWidth: 1.8, pointRadius: 3, fill: false });
      datasets.push({
        type: 'scatter',
        label: s.variant + ' steps',
        data: s.steps,
        pointStyle: 'triangle',
        pointRadius: 9,
        rotation: s.steps.map(function (p) { return p.kind === 'IMPROVEMENT' ? 180 : 0; }),
        backgroundColor: s.steps.map(function (p) { return VERDICT_COLOURS[p.kind === 'REGRESSION' ? 'SLOWER' : 'FASTER']; }),
        borderColor: '#000',
        borderWidth: 1
      });
    });
    return {
      type: 'line',
      data: { labels: spec.builds, datasets: datasets },
      options: {
        plugins: {
          title: { display: true, text: spec.title },
          legend: { position: 'bottom', labels: { filter: function (item) { return !/ p10$/.test(item.text); } } },
          tooltip: {
            callbacks: {
              label: function (item) {
                var d = item.dataset;
                var p = d.data[item.dataIndex];
                return d.label + ': ' + fmt(item.parsed.y) + ' ' + spec.unit + (p && p.kind ? ' (' + p.kind + ')' : '');
              }
            }
          }
        },
        scales: {
          x: { type: 'category', title: { display: true, text: 'build' } },
          y: { type: spec.scale, min: range.min, max: range.max, title: { display: true, text: 'latency (' + spec.unit + '): median, p10-p90 band' + (spec.scale === 'logarithmic' ? ', log scale' : '') } }
        }
      }
    };
  }

  var builders = { box: boxConfig, speedup: speedupConfig, telemetry: telemetryConfig, history: historyConfig };
  var charts = [];
  specs.forEach(function (spec) {
    try {
      var canvas = document.getElementById(spec.id);
      charts.push(new Chart(canvas, builders[spec.kind](spec)));
    } catch (err) {
      console.error('moefarm report: chart ' + spec.id + ' failed: ' + (err && err.stack ? err.stack : err));
    }
  });
  window.__moefarmCharts = charts.map(function (c) {
    var scales = {};
    Object.keys(c.scales).forEach(function (k) {
      var title = c.options.scales && c.options.scales[k] && c.options.scales[k].title;
      scales[k] = { type: c.scales[k].type, title: title && title.display ? String(title.text) : '', min: c.scales[k].min, max: c.scales[k].max };
    });
    return {
      id: c.canvas.id,
      kind: c.canvas.getAttribute('data-chart'),
      series: c.data.datasets.length,
      points: c.data.datasets.map(function (d) { return d.data.length; }),
      datasets: c.data.datasets.map(function (d) { return d.label; }),
      scales: scales
    };
  });
  document.body.dataset.ready = '1';
})();
`;
