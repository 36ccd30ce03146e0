/** The time-series chart (uPlot), loaded on demand by the channel views so the main bundle stays small. */
import uPlot from 'uplot';
import type { SeriesSet } from './senml';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

/** uPlot wants one shared x array: the union of every series' times, with null where a series has no value. */
function aligned(set: SeriesSet): uPlot.AlignedData {
  const xs = [...new Set([...set.series.values()].flatMap((s) => s.t))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = [...set.series.values()].map((s) => {
    const y: (number | null)[] = new Array<number | null>(xs.length).fill(null);
    s.t.forEach((t, i) => (y[index.get(t)!] = s.v[i]!));
    return y;
  });
  return [xs, ...ys];
}

export interface Chart {
  update: (set: SeriesSet) => void;
  destroy: () => void;
}

export function createChart(el: HTMLElement): Chart {
  let plot: uPlot | undefined;
  let names = '';
  // As wide as its box: at 320 px (a phone, or 400 % zoom) wider would make the whole page scroll sideways.
  const size = () => ({ width: Math.max(200, el.clientWidth), height: 280 });
  const resize = new ResizeObserver(() => plot?.setSize(size()));
  resize.observe(el);
  return {
    update(set) {
      // How many points the chart was last given to draw (tests read it: the SeriesSet may hold more than was drawn).
      el.dataset.drawn = String(set.points);
      const keys = [...set.series.keys()];
      const data = aligned(set);
      if (keys.join('\n') === names && plot) return plot.setData(data);
      // A new name: build the chart again with one series per name.
      plot?.destroy();
      names = keys.join('\n');
      const series: uPlot.Series[] = [
        {},
        ...keys.map((k, i) => ({ label: set.series.get(k)?.unit ? `${k} (${set.series.get(k)!.unit})` : k, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true, points: { show: true, size: 5 } })),
      ];
      // Axis text and grid in the page's colours (light or dark scheme), not uPlot's fixed black.
      const css = getComputedStyle(el);
      const axis = { stroke: css.color, grid: { stroke: css.getPropertyValue('--line').trim() || '#8884', width: 1 }, ticks: { show: false } };
      plot = new uPlot({ ...size(), series, axes: [axis, axis], scales: { x: { time: true, range: (_u, min, max) => (min === max ? [min - 30, max + 30] : [min, max]) } }, legend: { live: false } }, data, el);
    },
    destroy() {
      resize.disconnect();
      plot?.destroy();
    },
  };
}
