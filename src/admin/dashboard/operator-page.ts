/**
 * The operator dashboard (GET /): plain HTML and JS, no build step. It takes
 * the stats token from `?token=` (then drops it from the address bar) or asks
 * for it, keeps it in sessionStorage, and polls /stats with it in the
 * Authorization header every POLL_MS. Everything shown goes through
 * textContent, never HTML.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Snapper</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222 }
  .cards { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1rem 0 }
  .card { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem }
  .card b { display: block; font-size: 1.6rem }
  table { border-collapse: collapse; width: 100% }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #eee }
  td.num { text-align: right; font-variant-numeric: tabular-nums }
  #problem { color: #b42318 }
  .muted { color: #666; font-size: 13px }
  [hidden] { display: none }
</style>
</head>
<body>
<h1>Snapper <span id="version" class="muted"></span></h1>
<form id="login" hidden>
  <p>Stats token (a JWT with <code>name: "snapper"</code>; <code>snapper token --name snapper</code> prints one):</p>
  <input id="token" size="60" autocomplete="off" required> <button type="submit">Show</button>
</form>
<p id="problem"></p>
<div id="view" hidden>
  <div class="cards">
    <div class="card">online<b id="online">-</b></div>
    <div class="card">published<b id="producerMessages">-</b></div>
    <div class="card">delivered<b id="consumerMessages">-</b></div>
    <div class="card">consumer connects<b id="consumers">-</b></div>
    <div class="card">rooms<b id="rooms">-</b></div>
  </div>
  <h2>Nodes</h2>
  <table><thead><tr><th>node</th><th>online</th><th>last report</th><th>state</th></tr></thead><tbody id="nodes"></tbody></table>
  <div id="workersBlock" hidden>
    <h2>Workers of this host</h2>
    <table><thead><tr><th>#</th><th>pid</th><th>gateway port</th><th>ready</th><th>restarts</th></tr></thead><tbody id="workers"></tbody></table>
  </div>
  <p class="muted">Updated <span id="updated">never</span>; every 2 s.</p>
</div>
<script>
(function () {
  'use strict'
  var POLL_MS = 2000
  var KEY = 'snapper.statsToken'
  var $ = function (id) { return document.getElementById(id) }
  var params = new URLSearchParams(location.search)
  if (params.get('token')) {
    sessionStorage.setItem(KEY, params.get('token'))
    history.replaceState(null, '', location.pathname) // the token does not stay in the address bar or history
  }
  $('login').addEventListener('submit', function (event) {
    event.preventDefault()
    sessionStorage.setItem(KEY, $('token').value.trim())
    $('login').hidden = true
    poll()
  })

  function cell (row, text, isNumber) {
    var td = document.createElement('td')
    td.textContent = text
    if (isNumber) td.className = 'num'
    row.appendChild(td)
  }
  function fill (tbody, rows) {
    tbody.textContent = ''
    rows.forEach(function (values) {
      var tr = document.createElement('tr')
      values.forEach(function (value) { cell(tr, String(value), typeof value === 'number') })
      tbody.appendChild(tr)
    })
  }
  function render (body) {
    var stats = body.stats
    $('version').textContent = body.version
    $('online').textContent = stats.online
    ;['producerMessages', 'consumerMessages', 'consumers', 'rooms'].forEach(function (key) { $(key).textContent = stats.total[key] })
    var nodes = body.nodes || []
    fill($('nodes'), nodes.map(function (node) {
      return [node.name, node.online, (node.reportedMsAgo / 1000).toFixed(1) + ' s ago', node.isAlive ? 'alive' : 'gone']
    }))
    var workers = body.workers || []
    $('workersBlock').hidden = workers.length === 0
    fill($('workers'), workers.map(function (w) { return [w.index, w.pid || '-', w.gatewayPort, w.isReady ? 'yes' : 'no', w.restarts] }))
    $('updated').textContent = new Date().toLocaleTimeString()
    $('view').hidden = false
    $('problem').textContent = ''
  }

  var timer
  function poll () {
    clearTimeout(timer)
    var token = sessionStorage.getItem(KEY)
    if (!token) {
      $('login').hidden = false
      return
    }
    fetch('/stats', { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' })
      .then(function (res) {
        if (res.status === 401) {
          sessionStorage.removeItem(KEY)
          $('problem').textContent = 'That token was refused.'
          $('login').hidden = false
          return
        }
        return res.json().then(function (body) {
          if (!res.ok) throw new Error((body.error && body.error.message) || 'HTTP ' + res.status)
          render(body)
          timer = setTimeout(poll, POLL_MS)
        })
      })
      .catch(function (err) {
        $('problem').textContent = 'Stats unavailable: ' + (err.message || err)
        timer = setTimeout(poll, POLL_MS)
      })
  }
  poll()
})()
</script>
</body>
</html>
`
