// Small SVG time-series charts for the dashboard: lines over a time axis, a
// grid with round-number ticks, gaps where a value is missing, and a hover
// readout. No library: a few dozen lines do what the page needs, and nothing
// is fetched from elsewhere.

const SVG = 'http://www.w3.org/2000/svg'
const MARGIN = { top: 12, right: 14, bottom: 24, left: 52 }

function element(name, attributes, parent) {
  const node = document.createElementNS(SVG, name)
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value))
  if (parent) parent.appendChild(node)
  return node
}

/** A round step (1, 2 or 5 times a power of ten) that cuts 0..max into about `count` parts. */
function niceStep(max, count) {
  const raw = max / count
  const power = 10 ** Math.floor(Math.log10(raw))
  const fraction = raw / power
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power
}

const clock = t =>
  new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false })

/**
 * Draws `series` ([{label, color, values: [number | null]}], one value per
 * time in `times`) into `svg`, from `from` to `to` (ms). `format` writes a
 * value for the axis and the readout. Redraws from scratch each time: a few
 * hundred points per line cost nothing.
 */
export function drawChart(svg, { times, series, from, to, format }) {
  const width = svg.clientWidth || 600
  const height = svg.clientHeight || 200
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  svg.textContent = ''
  const plotWidth = width - MARGIN.left - MARGIN.right
  const plotHeight = height - MARGIN.top - MARGIN.bottom

  let max = 0
  for (const { values } of series) for (const value of values) if (value !== null && value > max) max = value
  const step = niceStep(max > 0 ? max : 1, 4)
  const top = Math.max(step, Math.ceil((max * 1.05) / step) * step)
  const x = t => MARGIN.left + ((t - from) / Math.max(1, to - from)) * plotWidth
  const y = value => MARGIN.top + plotHeight - (value / top) * plotHeight

  const grid = element('g', { class: 'grid' }, svg)
  for (let value = 0; value <= top + step / 2; value += step) {
    element('line', { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(value), y2: y(value) }, grid)
    const label = element('text', { x: MARGIN.left - 8, y: y(value) + 4, 'text-anchor': 'end' }, grid)
    label.textContent = format(value)
  }
  const ticks = Math.max(2, Math.min(6, Math.floor(plotWidth / 120)))
  for (let i = 0; i <= ticks; i++) {
    const t = from + ((to - from) * i) / ticks
    const anchor = i === 0 ? 'start' : i === ticks ? 'end' : 'middle'
    const label = element('text', { x: x(t), y: height - 6, 'text-anchor': anchor }, grid)
    label.textContent = clock(t)
  }

  if (max === 0 && series.every(({ values }) => values.every(value => value === null))) {
    const note = element(
      'text',
      { class: 'empty', x: MARGIN.left + plotWidth / 2, y: MARGIN.top + plotHeight / 2 },
      svg,
    )
    note.textContent = 'no data yet'
  }

  series.forEach(({ color, values, fill }) => {
    let line = ''
    let started = false
    values.forEach((value, i) => {
      if (value === null || times[i] < from) {
        started = false
        return
      }
      line += `${started ? 'L' : 'M'}${x(times[i]).toFixed(1)},${y(value).toFixed(1)}`
      started = true
    })
    if (line === '') return
    if (fill) {
      const area = `${line}L${x(times[times.length - 1]).toFixed(1)},${y(0)}L${x(Math.max(from, times[0]))},${y(0)}Z`
      element('path', { d: area, fill: color, 'fill-opacity': 0.08, stroke: 'none' }, svg)
    }
    element('path', { d: line, class: 'line', stroke: color }, svg)
  })

  addReadout(svg, { times, series, x, y, format, height })
}

/** Where the pointer is over each chart (client x), so that a redraw keeps its readout in place. */
const pointers = new WeakMap()

/** A vertical rule and the values at the time under the pointer. */
function addReadout(svg, { times, series, x, y, format, height }) {
  const layer = element('g', { class: 'readout', visibility: 'hidden' }, svg)
  const rule = element('line', { y1: MARGIN.top, y2: height - MARGIN.bottom }, layer)
  const dots = series.map(({ color }) => element('circle', { r: 3.5, fill: color }, layer))
  const box = element('rect', { rx: 4, height: 18 + 16 * series.length, width: 150 }, layer)
  const time = element('text', { class: 'readout-time' }, layer)
  const texts = series.map(({ color }) => element('text', { fill: color }, layer))
  svg.onpointerleave = () => {
    pointers.delete(svg)
    layer.setAttribute('visibility', 'hidden')
  }
  svg.onpointermove = event => {
    pointers.set(svg, event.clientX)
    show(event.clientX)
  }
  const show = clientX => {
    if (times.length === 0) return
    const scale = svg.viewBox.baseVal.width / svg.getBoundingClientRect().width
    const px = (clientX - svg.getBoundingClientRect().left) * scale
    let nearest = 0
    for (let i = 1; i < times.length; i++)
      if (Math.abs(x(times[i]) - px) < Math.abs(x(times[nearest]) - px)) nearest = i
    const at = x(times[nearest])
    layer.setAttribute('visibility', 'visible')
    rule.setAttribute('x1', at)
    rule.setAttribute('x2', at)
    const left = at + 160 > svg.viewBox.baseVal.width ? at - 158 : at + 8
    box.setAttribute('x', left)
    box.setAttribute('y', MARGIN.top)
    time.setAttribute('x', left + 8)
    time.setAttribute('y', MARGIN.top + 13)
    time.textContent = clock(times[nearest])
    series.forEach(({ label, values }, i) => {
      const value = values[nearest]
      dots[i].setAttribute('cx', at)
      dots[i].setAttribute('cy', value === null ? -10 : y(value))
      texts[i].setAttribute('x', left + 8)
      texts[i].setAttribute('y', MARGIN.top + 29 + 16 * i)
      texts[i].textContent = `${label}: ${value === null ? '–' : format(value)}`
    })
  }
  if (pointers.has(svg)) show(pointers.get(svg))
}
