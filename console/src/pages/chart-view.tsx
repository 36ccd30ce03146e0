import { useEffect, useRef } from 'preact/hooks';
import type { Chart } from '../chart';
import type { SeriesSet } from '../senml';
import { num, Scroll } from '../ui';

/**
 * A uPlot chart of a SeriesSet (redrawn when `version` changes), with a table of the latest value per
 * name as its text alternative. `data-points` tells how many points the set holds; the plot's
 * `data-drawn`, how many the chart was last given to draw.
 */
export function ChartView({ set, version, caption }: { set: SeriesSet; version: number; caption: string }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<Chart | null>(null);
  // The set as last rendered: the page may replace it (the live view starts a new one as it opens)
  // before the chart's code has loaded, and the chart then draws that one, not the first render's.
  const latest = useRef(set);
  latest.current = set;
  useEffect(() => {
    let dead = false;
    void import('../chart').then(({ createChart }) => {
      if (dead || !box.current) return;
      chart.current = createChart(box.current);
      if (latest.current.points) chart.current.update(latest.current);
    });
    return () => {
      dead = true;
      chart.current?.destroy();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    if (set.points) chart.current?.update(set);
  }, [version]);
  const rows = [...set.series.entries()];
  return (
    <figure class="chart" data-points={set.points}>
      <figcaption>{caption}</figcaption>
      <div ref={box} aria-hidden="true" class="plot" />
      {rows.length === 0 ? (
        <p class="muted">No numeric SenML values yet.</p>
      ) : (
        <Scroll label="Latest values table">
          <table>
            <caption class="sr-only">Latest value per name</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Latest</th>
                <th scope="col">Unit</th>
                <th scope="col">At</th>
                <th scope="col">Points</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(([name, s]) => (
                <tr key={name} data-series={name}>
                  <th scope="row">{name}</th>
                  <td>{num(s.v[s.v.length - 1]!)}</td>
                  <td>{s.unit ?? ''}</td>
                  <td>{new Date(s.t[s.t.length - 1]! * 1000).toLocaleTimeString()}</td>
                  <td>{s.t.length}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Scroll>
      )}
    </figure>
  );
}
