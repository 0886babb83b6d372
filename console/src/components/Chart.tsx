import { createEffect, onCleanup, onMount } from "solid-js"
import uPlot from "uplot"
import "uplot/dist/uPlot.min.css"

export interface ChartSeries {
  readonly label: string
  readonly color: string
  readonly unit: string
}

/**
 * One uPlot time-series chart. `data` is [seconds[], values[]...]; a new array re-draws (setData),
 * so live points are appended by the owner without re-creating the chart. Width follows the box.
 */
export function Chart(props: {
  readonly title: string
  readonly series: ReadonlyArray<ChartSeries>
  readonly data: uPlot.AlignedData
  readonly height?: number
  readonly testid?: string
}) {
  let box: HTMLDivElement | undefined
  let plot: uPlot | undefined
  onMount(() => {
    const dark = document.documentElement.classList.contains("dark")
    const axis = { stroke: dark ? "#94a3b8" : "#475569", grid: { stroke: dark ? "#1e293b" : "#e2e8f0", width: 1 }, ticks: { show: false } }
    plot = new uPlot(
      {
        width: box!.clientWidth || 400,
        height: props.height ?? 180,
        legend: { show: true, live: true },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: true } },
        axes: [axis, { ...axis, size: 50, values: (_u, ticks) => ticks.map((tick) => `${tick}${props.series[0]?.unit ?? ""}`) }],
        series: [{}, ...props.series.map((series) => ({ label: series.label, stroke: series.color, width: 1.5, points: { show: false }, spanGaps: false }))]
      },
      props.data as uPlot.AlignedData,
      box!
    )
    const observer = new ResizeObserver(() => plot?.setSize({ width: box!.clientWidth, height: props.height ?? 180 }))
    observer.observe(box!)
    onCleanup(() => {
      observer.disconnect()
      plot?.destroy()
    })
  })
  createEffect(() => plot?.setData(props.data as uPlot.AlignedData))
  return (
    <figure class="min-w-0" data-testid={props.testid} data-points={props.data[0]?.length ?? 0}>
      <figcaption class="mb-1 text-xs font-semibold text-slate-600 dark:text-slate-300">{props.title}</figcaption>
      <div ref={box} class="w-full" />
    </figure>
  )
}
