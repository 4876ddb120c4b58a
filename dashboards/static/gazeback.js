// gazeback's additions to datasette-dashboards' dashboards.js (loaded after it, so these
// definitions replace the plugin's): colour-blind-safe colours (Okabe & Ito), readable
// sizes on a projector, links that open in the same tab, charts with no rows that say so
// (and what to do next) instead of failing, whole-number axes for counts, time axes that
// never repeat a label, times in this computer's time zone with the zone named, and a
// table under every chart (its text alternative, reachable with the keyboard). Nothing
// here loads anything from the internet.

document.documentElement.lang = document.documentElement.lang || 'en'

const GAZEBACK_COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000']

// Every chart sits in an element with role="img" and a label naming the table under it:
// the marks themselves stay out of the accessibility tree (aria: false, aria-hidden).
const GAZEBACK_VEGA_CONFIG = {
  aria: false,
  background: '#00000000',
  font: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  range: { category: GAZEBACK_COLOURS },
  axis: { labelFontSize: 13, titleFontSize: 13 },
  legend: { labelFontSize: 13, titleFontSize: 13 },
  arc: { innerRadius: 50 },
  line: { point: true },
}

function gazebackData(chart, query_string, absolute_url) {
  return fetch(getDataUrl(chart, query_string, absolute_url)).then(r => {
    if (!r.ok) { throw new Error(`chart query failed (${r.status})`) }
    return r.json()
  })
}

const GAZEBACK_NOTHING = 'Nothing to show for these choices: clear the boxes above and press Apply, or pick other dates.'
const GAZEBACK_NOTHING_YET = 'Nothing recorded here yet.'

// this computer's time zone, named, e.g. "Europe/Berlin"
const GAZEBACK_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time'
const GAZEBACK_UTC_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|\+00:00)$/

// "2026-11-27T13:05:00.000Z" -> "Fri 27 Nov 2026, 14:05:00 CET" (this computer's zone)
function gazebackLocalTime(value) {
  if (typeof value !== 'string' || !GAZEBACK_UTC_TIME.test(value)) { return null }
  const at = new Date(value.replace(' ', 'T').replace('+00:00', 'Z'))
  if (isNaN(at)) { return null }
  return at.toLocaleString(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
  })
}

function gazebackNothing(chart_slug, text, chart) {
  const el = document.querySelector(`#chart-${chart_slug}`)
  const p = document.createElement('p')
  p.className = 'gazeback-nothing'
  if (chart && chart.empty) {
    p.innerHTML = chart.empty // written in metadata.yml, never from traffic
  } else {
    // with nothing chosen, there is nothing to clear: say so plainly
    const chosen = [...new URLSearchParams(window.location.search).values()].some(v => v)
    p.textContent = text || (chosen ? GAZEBACK_NOTHING : GAZEBACK_NOTHING_YET)
  }
  el.appendChild(p)
  el.setAttribute('data-rendered', 'true')
}

// Whole-number axes for counts, and a time axis whose ticks suit the range shown.
function gazebackAxes(encoding, rows) {
  if (!encoding) { return }
  // a colour legend for counts: whole numbers (1, 2, 3; never 1.0, 1.5, 2.0)
  if (encoding.color && encoding.color.type === 'quantitative') {
    encoding.color.legend = { format: ',d', tickMinStep: 1, ...(encoding.color.legend || {}) }
  }
  for (const channel of ['x', 'y']) {
    const enc = encoding[channel]
    if (!enc) { continue }
    if (enc.type === 'quantitative') {
      // counts: whole-number ticks only (never 0.5); below 10, one tick per whole number
      const other = encoding[channel === 'x' ? 'y' : 'x']
      const totals = {}
      rows.forEach(r => {
        const key = other && other.field ? String(r[other.field]) : ''
        totals[key] = (totals[key] || 0) + (Number(r[enc.field]) || 0)
      })
      const top = Math.max(0, ...Object.values(totals))
      const axis = { tickMinStep: 1, format: ',d', labelOverlap: true, labelFlush: true }
      if (top <= 10) { axis.values = Array.from({ length: Math.ceil(top) + 1 }, (_, i) => i) }
      enc.axis = { ...axis, ...(enc.axis || {}) }
    }
    if (enc.type === 'temporal') {
      const times = rows.map(r => Date.parse(r[enc.field])).filter(t => !isNaN(t))
      const hours = times.length ? (Math.max(...times) - Math.min(...times)) / 3600e3 + 1 : 1
      const days = new Set(times.map(t => new Date(t).toDateString())).size
      let tickCount, format
      if (hours <= 12) {
        tickCount = { interval: 'hours', step: 1 }
      } else if (hours <= 36) {
        tickCount = { interval: 'hours', step: 3 }
      } else if (hours <= 96) {
        tickCount = { interval: 'hours', step: 12 }
      } else if (hours <= 24 * 21) {
        tickCount = { interval: 'day', step: 1 }
      } else {
        tickCount = { interval: 'week', step: 1 }
      }
      if (hours > 96) {
        format = '%a %d %b'
      } else if (days > 1) {
        format = '%a %H:%M'
      } else {
        format = '%H:%M'
      }
      enc.timeUnit = enc.timeUnit || 'yearmonthdatehours'
      enc.title = enc.title || `Time (${GAZEBACK_ZONE})`
      enc.axis = { tickCount, format, labelOverlap: true, ...(enc.axis || {}) }
    }
  }
}

// The numbers behind a chart as a table: its text alternative, and the keyboard's way in
// (a chart's bars are links for a mouse; the table's first column is the same link).
function gazebackChartTable(el, chart, rows) {
  const details = document.createElement('details')
  details.className = 'gazeback-chart-table'
  const summary = document.createElement('summary')
  summary.textContent = `The numbers behind “${chart.title}” as a table`
  details.appendChild(summary)
  const table = document.createElement('table')
  table.className = 'gazeback-table'
  const caption = table.createCaption()
  caption.textContent = chart.title
  const cols = Object.keys(rows[0]).filter(c => c !== 'url')
  const head = table.createTHead().insertRow()
  cols.forEach(col => {
    const th = document.createElement('th')
    th.scope = 'col'
    th.textContent = col === 'hour' ? `Hour (${GAZEBACK_ZONE})` : col.charAt(0).toUpperCase() + col.slice(1)
    head.appendChild(th)
  })
  const body = table.createTBody()
  rows.slice(0, 100).forEach(row => {
    const tr = body.insertRow()
    cols.forEach((col, i) => {
      const cell = tr.insertCell()
      let value = row[col]
      value = gazebackLocalTime(value) || (typeof value === 'number' ? value.toLocaleString() : value)
      if (i === 0 && row.url) {
        const a = document.createElement('a')
        a.href = row.url
        a.textContent = value === null ? '' : String(value)
        cell.appendChild(a)
      } else {
        cell.textContent = value === null || value === undefined ? '' : String(value)
      }
    })
  })
  if (rows.length > 100) {
    const tr = body.insertRow()
    const cell = tr.insertCell()
    cell.colSpan = cols.length
    cell.textContent = `… and ${rows.length - 100} more rows`
  }
  details.appendChild(table)
  el.appendChild(details)
}

async function renderVegaLiteChart(chart_slug, chart, query_string, absolute_url, full_height) {
  const data = await gazebackData(chart, query_string, absolute_url)
  if (!data.rows || data.rows.length === 0) { return gazebackNothing(chart_slug, null, chart) }
  const display = JSON.parse(JSON.stringify(chart.display))
  gazebackAxes(display.encoding, data.rows)
  for (const layer of display.layer || []) { gazebackAxes(layer.encoding, data.rows) }
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    description: chart.title,
    width: 'container',
    height: full_height ? 'container' : undefined,
    view: { stroke: null },
    config: GAZEBACK_VEGA_CONFIG,
    data: { values: data.rows, format: { type: 'json' } },
    ...display,
  }
  const el = document.querySelector(`#chart-${chart_slug}`)
  const picture = document.createElement('div')
  picture.className = 'gazeback-picture'
  picture.setAttribute('role', 'img')
  picture.setAttribute('aria-label', `${chart.title}: a chart of ${data.rows.length} values; the table below it lists them.`)
  el.appendChild(picture)
  await vegaEmbed(picture, spec, {
    actions: false,
    renderer: 'svg', // text a screen reader and a test can read
    loader: vega.loader({ target: '_self' }),
  })
  // the picture's label (role="img" above) and the table below speak for the marks
  picture.querySelectorAll('svg').forEach(svg => svg.setAttribute('aria-hidden', 'true'))
  gazebackChartTable(el, chart, data.rows)
  el.setAttribute('data-rendered', 'true')
  if (data.truncated) { enableChartTooltip(chart_slug) }
}

async function renderMetricChart(chart_slug, chart, query_string, absolute_url, full_height) {
  const data = await gazebackData(chart, query_string, absolute_url)
  const row = (data.rows || [])[0]
  const metric = row ? row[chart.display.field] : null
  if (metric === null || metric === undefined) { return gazebackNothing(chart_slug, '—', chart) }
  const p = document.createElement('p')
  p.className = 'gazeback-metric'
  // cells are built by gazeback's SQL, which escapes everything that came from traffic
  p.innerHTML = `${chart.display.prefix || ''}${metric}${chart.display.suffix || ''}`
  const el = document.querySelector(`#chart-${chart_slug}`)
  el.appendChild(p)
  el.setAttribute('data-rendered', 'true')
}

async function renderTableChart(chart_slug, chart, query_string, absolute_url, full_height) {
  const data = await gazebackData(chart, query_string, absolute_url)
  if (!data.rows || data.rows.length === 0) { return gazebackNothing(chart_slug, null, chart) }
  const table = document.createElement('table')
  table.className = 'gazeback-table'
  table.createCaption().textContent = chart.title
  const head = table.createTHead().insertRow()
  Object.keys(data.rows[0]).forEach(col => {
    const th = document.createElement('th')
    th.scope = 'col'
    th.textContent = col
    head.appendChild(th)
  })
  const body = table.createTBody()
  data.rows.forEach(row => {
    const tr = body.insertRow()
    Object.values(row).forEach(value => {
      const local = gazebackLocalTime(value)
      if (local) {
        tr.insertCell().textContent = local
      } else {
        tr.insertCell().innerHTML = value === null ? '' : value
      }
    })
  })
  const wrapper = document.createElement('div')
  wrapper.className = 'gazeback-table-wrapper'
  wrapper.tabIndex = 0 // it may scroll: the keyboard must reach it
  wrapper.setAttribute('role', 'region')
  wrapper.setAttribute('aria-label', chart.title)
  wrapper.appendChild(table)
  const el = document.querySelector(`#chart-${chart_slug}`)
  el.appendChild(wrapper)
  el.setAttribute('data-rendered', 'true')
  if (data.truncated) { enableChartTooltip(chart_slug) }
}

async function renderMapChart(chart_slug) {
  // the plugin's map loads tiles from the internet: gazeback draws maps with Vega-Lite instead
  gazebackNothing(chart_slug, 'Map charts are drawn with Vega-Lite in gazeback.')
}

// Show the "no traffic yet" page on an empty database; otherwise draw the charts.
// The experiment board shows the latest experiment when none is chosen: its box says which.
function gazebackShowChosenExperiment() {
  const box = document.querySelector('.dashboard-filters select#experiment')
  const chosen = new URLSearchParams(window.location.search).get('experiment')
  if (box && !chosen && box.options.length > 1 && !box.value) {
    box.value = box.options[1].value // the newest: the options are listed newest first
  }
}

async function gazebackStart(db, absolute_url, draw) {
  gazebackShowChosenExperiment()
  let empty = false
  try {
    const sql = encodeURIComponent('select exists(select 1 from requests) as any_rows')
    const r = await fetch(`${absolute_url}${db}.json?sql=${sql}&_shape=array`)
    const rows = await r.json()
    empty = r.ok && rows.length > 0 && !rows[0].any_rows
  } catch (e) {
    empty = false
  }
  if (empty) {
    document.getElementById('gazeback-empty').hidden = false
    document.querySelectorAll('.dashboard-filters, .dashboard-grid').forEach(el => { el.hidden = true })
    document.body.setAttribute('data-gazeback-empty', 'true')
    return
  }
  draw()
}
