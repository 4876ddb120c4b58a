// gazeback's additions to datasette-dashboards' dashboards.js (loaded after it, so these
// definitions replace the plugin's): colour-blind-safe colours (Okabe & Ito), readable
// sizes on a projector, links that open in the same tab, and charts with no rows that say
// so instead of failing. Nothing here loads anything from the internet.

const GAZEBACK_COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000']

const GAZEBACK_VEGA_CONFIG = {
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

function gazebackNothing(chart_slug, text) {
  const el = document.querySelector(`#chart-${chart_slug}`)
  const p = document.createElement('p')
  p.className = 'gazeback-nothing'
  p.textContent = text || 'Nothing here for these choices.'
  el.appendChild(p)
}

async function renderVegaLiteChart(chart_slug, chart, query_string, absolute_url, full_height) {
  const data = await gazebackData(chart, query_string, absolute_url)
  if (!data.rows || data.rows.length === 0) { return gazebackNothing(chart_slug) }
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    description: chart.title,
    width: 'container',
    height: full_height ? 'container' : undefined,
    view: { stroke: null },
    config: GAZEBACK_VEGA_CONFIG,
    data: { values: data.rows, format: { type: 'json' } },
    ...chart.display,
  }
  const el = document.querySelector(`#chart-${chart_slug}`)
  await vegaEmbed(el, spec, {
    actions: { export: true, source: false, compiled: false, editor: false },
    loader: vega.loader({ target: '_self' }),
  })
  el.setAttribute('data-rendered', 'true')
  if (data.truncated) { enableChartTooltip(chart_slug) }
}

async function renderMetricChart(chart_slug, chart, query_string, absolute_url, full_height) {
  const data = await gazebackData(chart, query_string, absolute_url)
  const row = (data.rows || [])[0]
  const metric = row ? row[chart.display.field] : null
  if (metric === null || metric === undefined) { return gazebackNothing(chart_slug, '—') }
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
  if (!data.rows || data.rows.length === 0) { return gazebackNothing(chart_slug) }
  const table = document.createElement('table')
  table.className = 'gazeback-table'
  const head = table.createTHead().insertRow()
  Object.keys(data.rows[0]).forEach(col => {
    const th = document.createElement('th')
    th.textContent = col
    head.appendChild(th)
  })
  const body = table.createTBody()
  data.rows.forEach(row => {
    const tr = body.insertRow()
    Object.values(row).forEach(value => {
      tr.insertCell().innerHTML = value === null ? '' : value
    })
  })
  const wrapper = document.createElement('div')
  wrapper.className = 'gazeback-table-wrapper'
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
async function gazebackStart(db, absolute_url, draw) {
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
