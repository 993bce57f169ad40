/** A live line chart over uPlot: created once, fed new data on every render, sized to its box. */
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { clock } from '../format.js';

export interface ChartSeries {
  label: string;
  color: string;
}

interface Props {
  title: string;
  series: ChartSeries[];
  /** [x (unix seconds), ...one array per series]. */
  data: number[][];
  /** Formats a value on the y axis and in the legend. */
  format?: (v: number) => string;
  height?: number;
}

const AXIS = { stroke: '#9aa4b2', grid: { stroke: '#2a3140', width: 1 }, ticks: { stroke: '#2a3140', width: 1 } };

export function Chart({ title, series, data, format = (v) => String(v), height = 160 }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const fmt = useRef(format);
  fmt.current = format;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
      axes: [
        { ...AXIS, space: 80, values: (_u, vals) => vals.map((v) => clock(v * 1000)) },
        { ...AXIS, size: 64, values: (_u, vals) => vals.map((v) => fmt.current(v)) },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: `${s.color}22`,
          points: { show: false },
          value: (_u: uPlot, v: number | null) => (v == null ? '—' : fmt.current(v)),
        })),
      ],
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // The series are fixed for a chart's life; data arrives through the effect below.
  }, [height, series.map((s) => s.label).join('|')]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);

  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title} chart`} />
    </figure>
  );
}
