// The operator dashboard. Takes the operator token from ?token= (then drops it
// from the address bar) or asks for it, keeps it in sessionStorage, and polls:
// /dashboard/series every second (only the points it lacks), /stats every two.
// Everything shown goes through textContent, never HTML.
import { drawChart } from './charts.js'

const SERIES_POLL_MS = 1000
const STATS_POLL_MS = 2000
const WINDOW_MS = 15 * 60 * 1000
const KEY = 'snapper.statsToken'
const COLORS = {
  published: '#2563eb',
  delivered: '#16a34a',
  online: '#7c3aed',
  p50: '#0891b2',
  p99: '#ea580c',
}

const $ = id => document.getElementById(id)
const points = []
let lastT = 0

// ---- the token ----

const params = new URLSearchParams(location.search)
if (params.get('token')) {
  sessionStorage.setItem(KEY, params.get('token'))
  history.replaceState(null, '', location.pathname) // the token stays out of the address bar and history
}
$('login').addEventListener('submit', event => {
  event.preventDefault()
  sessionStorage.setItem(KEY, $('token').value.trim())
  $('login').hidden = true
  start()
})

class Refused extends Error {}

/** fetch with the operator token; the parsed body, or an Error with the server's message. */
async function call(path, init = {}) {
  const token = sessionStorage.getItem(KEY)
  const headers = {
    Authorization: `Bearer ${token}`,
    ...(init.body ? { 'Content-Type': 'application/json' } : {}),
  }
  const res = await fetch(path, { ...init, headers, cache: 'no-store' })
  const body = await res.json().catch(() => ({}))
  if (res.status === 401) throw new Refused('That token was refused.')
  if (!res.ok) {
    const error = body.error || {}
    const reason = error.data && error.data.reason ? ` (${error.data.reason})` : ''
    throw new Error(`${error.message || `HTTP ${res.status}`}${reason}`)
  }
  return body
}

function problem(err) {
  if (err instanceof Refused) {
    sessionStorage.removeItem(KEY)
    $('login').hidden = false
    $('view').hidden = true
  }
  $('problem').textContent = err.message
  $('problem').hidden = false
}

// ---- formatting ----

const number = value => Math.round(value).toLocaleString('en-US')
function duration(ms) {
  if (ms === null || ms === undefined) return '–'
  if (ms === 0) return '0'
  if (ms < 1) return `${ms.toFixed(2)} ms`
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
  return `${(ms / 60_000).toFixed(1)} min`
}
const ago = ms => (ms < 1000 ? 'just now' : `${(ms / 1000).toFixed(1)} s ago`)
const time = ms => new Date(ms).toLocaleString([], { hour12: false })

// ---- charts ----

function render() {
  const latest = points[points.length - 1]
  if (latest) {
    $('kpi-online').textContent = number(latest.online)
    $('kpi-published').textContent = number(latest.published)
    $('kpi-delivered').textContent = number(latest.delivered)
    $('kpi-p50').textContent = duration(latest.p50)
    $('kpi-p99').textContent = duration(latest.p99)
  }
  const to = latest ? latest.t : Date.now()
  const span = points.length > 1 ? to - points[0].t : 0
  const from = to - Math.min(WINDOW_MS, Math.max(60_000, span))
  const times = points.map(point => point.t)
  const column = key => points.map(point => point[key])
  drawChart($('chart-rate'), {
    times,
    from,
    to,
    format: number,
    series: [
      { label: 'published/s', color: COLORS.published, values: column('published'), fill: true },
      { label: 'delivered/s', color: COLORS.delivered, values: column('delivered'), fill: true },
    ],
  })
  drawChart($('chart-online'), {
    times,
    from,
    to,
    format: number,
    series: [{ label: 'online', color: COLORS.online, values: column('online'), fill: true }],
  })
  drawChart($('chart-latency'), {
    times,
    from,
    to,
    format: duration,
    series: [
      { label: 'p50', color: COLORS.p50, values: column('p50') },
      { label: 'p99', color: COLORS.p99, values: column('p99') },
    ],
  })
}

async function pollSeries() {
  const body = await call(`/dashboard/series?since=${lastT}`)
  for (const point of body.points) {
    points.push(point)
    lastT = point.t
  }
  while (points.length > 0 && points[0].t < lastT - WINDOW_MS) points.shift()
  render()
}

// ---- tables ----

function fill(tbody, rows, empty) {
  tbody.textContent = ''
  if (rows.length === 0) rows = [[empty]]
  for (const values of rows) {
    const tr = document.createElement('tr')
    for (const value of values) {
      const td = document.createElement('td')
      if (value instanceof Node) td.appendChild(value)
      else td.textContent = String(value)
      if (typeof value === 'number') td.className = 'num'
      if (values.length === 1) td.colSpan = 9
      tr.appendChild(td)
    }
    tbody.appendChild(tr)
  }
}

function badge(text, kind) {
  const span = document.createElement('span')
  span.className = `badge ${kind}`
  span.textContent = text
  return span
}

async function pollStats() {
  const body = await call('/stats')
  const stats = body.stats
  $('version').textContent = `v${body.version}`
  $('kpi-total').textContent = number(stats.total.consumerMessages)
  const nodes = body.nodes || []
  const alive = nodes.filter(node => node.isAlive).length
  $('health').textContent = `${alive} node${alive === 1 ? '' : 's'} up`
  $('health').className = `pill ${alive > 0 ? 'ok' : 'bad'}`
  fill(
    $('nodes'),
    nodes.map(node => [
      node.name,
      node.online,
      ago(node.reportedMsAgo),
      node.isAlive ? badge('alive', 'ok') : badge('gone', 'bad'),
    ]),
    'no node has reported',
  )
  const workers = body.workers || []
  $('workersBlock').hidden = workers.length === 0
  fill(
    $('workers'),
    workers.map(w => [
      w.index,
      w.pid || '–',
      w.gatewayPort,
      w.isReady ? badge('ready', 'ok') : badge('down', 'bad'),
      w.restarts,
    ]),
    'no workers',
  )
  $('updated').textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`
  $('problem').hidden = true
  $('view').hidden = false
}

// ---- tools ----

/** Wires a tool form: `run` returns a message, or {header?, rows} to show as a table. */
function tool(form, run) {
  $(form).addEventListener('submit', async event => {
    event.preventDefault()
    const out = $(`${form}-result`)
    out.className = 'result'
    out.textContent = 'working…'
    try {
      const shown = await run()
      out.textContent = ''
      if (typeof shown === 'string') out.textContent = shown
      else {
        const table = document.createElement('table')
        if (shown.header) {
          const tr = table.createTHead().insertRow()
          for (const title of shown.header) tr.appendChild(document.createElement('th')).textContent = title
        }
        const tbody = document.createElement('tbody')
        fill(tbody, shown.rows, 'nothing')
        table.appendChild(tbody)
        out.appendChild(table)
      }
    } catch (err) {
      out.className = 'result error'
      out.textContent = err.message
      if (err instanceof Refused) problem(err)
    }
  })
}

const segment = value => encodeURIComponent(value.trim())

tool('presence', async () => {
  const body = await call(`/dashboard/users/${segment($('presence-user').value)}`)
  if (body.consumers.length === 0) return 'No live connection.'
  return {
    header: ['consumer', 'platform', 'node', ''],
    rows: body.consumers.map(c => [
      c.consumerId,
      c.platform,
      c.nodeId,
      c.isAlive ? badge('live', 'ok') : badge('node gone', 'bad'),
    ]),
  }
})

tool('room', async () => {
  const body = await call(`/dashboard/rooms/${segment($('room-name').value)}`)
  const rows = [
    ['messages in the log', body.length],
    ['last sequence', body.lastSeq],
    ['last published', body.lastPublishedAt === null ? 'never' : time(body.lastPublishedAt)],
  ]
  if (body.members) {
    rows.push(['members online on this cluster', body.members.count])
    for (const member of body.members.consumers) rows.push(['', `${member.consumerId} (${member.node})`])
  }
  return { rows }
})

tool('receipt', async () => {
  const { result } = await call(`/v1/receipts/${segment($('receipt-id').value)}`)
  const rows = [['escalated', result.escalated ? badge('yes', 'warn') : badge('no', 'ok')]]
  if (result.acked.length === 0) rows.push(['acknowledged by', 'nobody yet'])
  for (const ack of result.acked)
    rows.push([`${ack.platform} ${ack.consumerId}`, `user ${ack.userId}, ${time(ack.ackedAt)}`])
  return { rows }
})

$('publish-track').addEventListener('change', () => {
  $('publish-escalate').disabled = !$('publish-track').checked
})
tool('publish', async () => {
  const room = $('publish-room').value.trim()
  const message = $('publish-message').value
  if (!$('publish-track').checked) {
    const { result } = await call('/v1/publish', { method: 'POST', body: JSON.stringify({ room, message }) })
    return result === 1 ? 'Published.' : 'Not accepted (empty room or message, or too long).'
  }
  const escalate = $('publish-escalate').value.trim()
  const request = { room, message, ...(escalate !== '' && { escalateAfterMs: Number(escalate) }) }
  const { result } = await call('/v1/track', { method: 'POST', body: JSON.stringify(request) })
  $('receipt-id').value = result.id
  return { rows: [['tracked: id', result.id]] }
})

// ---- polling ----

function every(ms, task) {
  const run = () =>
    (sessionStorage.getItem(KEY) ? task() : Promise.resolve())
      .catch(problem)
      .finally(() => setTimeout(run, ms))
  run()
}

let started = false
function start() {
  if (!sessionStorage.getItem(KEY)) {
    $('login').hidden = false
    return
  }
  if (started) return
  started = true
  every(STATS_POLL_MS, pollStats)
  every(SERIES_POLL_MS, pollSeries)
}
window.addEventListener('resize', render)
start()
