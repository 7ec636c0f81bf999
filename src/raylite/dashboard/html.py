"""HTML building blocks of the dashboard: the page layout, tables with filters and paging,
and the two static assets (one stylesheet, one small vanilla script), all served by the
dashboard itself (no CDN, no framework, no build step).

    pages.py ─► layout(title, active, body) ─► one server-rendered page
                table(headers, rows) · filter_form(fields, query) · pager(total, page, per, query)
    server.py serves CSS and JS at /static/app.css and /static/app.js; the
    Content-Security-Policy allows only those ('self'), so no inline script runs.

Every value that comes from the cluster or the request is escaped with `esc` before it
is written into a page.
"""
from __future__ import annotations

import html
import urllib.parse

NAV = (("/", "Overview"), ("/jobs", "Jobs"), ("/actors", "Actors"), ("/tasks", "Tasks"),
       ("/objects", "Objects"), ("/metrics/view", "Metrics"), ("/logs", "Logs"))
PER_PAGE = 50
MAX_PER_PAGE = 500


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def layout(title: str, active: str, body: str, refresh: bool = True, note: str = "") -> str:
    nav = "".join(f'<a href="{href}"{" class=active" if href == active else ""}>{name}</a>'
                  for href, name in NAV)
    bar = ('<label class="refresh"><input type="checkbox" id="auto-refresh" checked> '
           'refresh every 5 s</label>') if refresh else ""
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{esc(title)} · raylite</title>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            '<link rel=stylesheet href="/static/app.css"><script src="/static/app.js" defer></script>'
            f'</head><body><header><span class=brand>raylite</span><nav>{nav}</nav>{bar}'
            '<form method=post action="/logout" class=logout><button>log out</button></form></header>'
            f'<main id=main data-refresh="{5 if refresh else 0}"><h1>{esc(title)}</h1>'
            f'{f"<p class=note>{esc(note)}</p>" if note else ""}{body}</main></body></html>')


def table(headers: list[str], rows: list[list[str]], table_id: str, empty: str) -> str:
    """Cells are already-escaped HTML."""
    if not rows:
        return f'<p class=empty id="{table_id}-empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def filter_form(action: str, fields: list[tuple], query: dict, hidden: tuple = ()) -> str:
    """fields: (name, label, choices or None for free text); hidden: names of query values
    the form carries along unchanged (a view, a window)."""
    parts = [f'<input type=hidden name="{name}" value="{esc(query[name])}">'
             for name in hidden if name in query]
    for name, label, choices in fields:
        value = query.get(name, "")
        if choices is None:
            parts.append(f'<label>{esc(label)} <input name="{name}" value="{esc(value)}" '
                         f'id="filter-{name}"></label>')
        else:
            opts = "".join(f'<option value="{esc(c)}"{" selected" if c == value else ""}>'
                           f'{esc(c or "any")}</option>' for c in ("",) + tuple(choices))
            parts.append(f'<label>{esc(label)} <select name="{name}" id="filter-{name}">{opts}'
                         '</select></label>')
    return (f'<form class=filters method=get action="{action}">{"".join(parts)}'
            '<button id="filter-apply">filter</button>'
            f'<a href="{action}" class=clear>clear</a></form>')


def tabs(links: list[tuple[str, str, str]], chosen: str) -> str:
    """A row of links (href, text, key); the one whose key is `chosen` is marked."""
    return '<div class=tabs id=views>' + "".join(
        f'<a href="{esc(href)}" id="view-{key}"{" class=active" if key == chosen else ""}>'
        f'{esc(text)}</a>' for href, text, key in links) + '</div>'


def paging(query: dict) -> tuple[int, int]:
    """(page >= 1, per page in 1..MAX_PER_PAGE) from the query: a value that is not a whole
    number >= 1 means the default, one above the bound means the bound."""
    def num(name: str, default: int, hi: int) -> int:
        try:
            value = int(query.get(name, default))
        except ValueError:
            return default
        return min(value, hi) if value >= 1 else default
    return num("page", 1, 10**9), num("per", PER_PAGE, MAX_PER_PAGE)


def pager(path: str, total: int, page: int, per: int, query: dict) -> str:
    pages = max((total + per - 1) // per, 1)

    def link(p: int, text: str) -> str:
        q = dict(query, page=str(p))
        return f'<a href="{path}?{esc(urllib.parse.urlencode(q))}" class=page>{text}</a>'
    prev = link(page - 1, "&larr; prev") if page > 1 else ""
    nxt = link(page + 1, "next &rarr;") if page < pages else ""
    first, last = (page - 1) * per + 1, min(page * per, total)
    shown = f"{first}&ndash;{last} of {total}" if total else "0 of 0"
    return f'<div class=pager id=pager>{prev} <span>page {page} of {pages} ({shown})</span> {nxt}</div>'


def short(ident: str | None, n: int = 12) -> str:
    if not ident:
        return "-"
    return f'<span class=id title="{esc(ident)}">{esc(ident[:n])}</span>'


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def amount(name: str, v: float) -> str:
    return f"{v / 2**30:.2f} GiB" if name in ("memory", "object_store_memory") else f"{v:g}"


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{display:flex;gap:1em;align-items:center;background:#1d3557;color:#fff;padding:.5em 1em}
header a{color:#cfe0f5;text-decoration:none;margin-right:.8em}header a.active{color:#fff;font-weight:600}
.brand{font-weight:700;margin-right:1em}.refresh{margin-left:auto;font-size:12px}
.logout button{font-size:12px}main{padding:1em 1.5em}h1{font-size:20px;margin:.2em 0 .6em}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:1em}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 8px;text-align:left;font-size:13px}
th{background:#eef1f5}.id{font-family:monospace}.note{color:#6b4f00;background:#fff6d8;padding:.4em .6em}
.cards{display:flex;flex-wrap:wrap;gap:1em;margin-bottom:1em}
.card{background:#fff;border:1px solid #e3e6ea;padding:.6em .8em;min-width:340px}
.card h2{font-size:14px;margin:0 0 .3em}.plot-bg{fill:#f0f4f8}.plot-line{stroke:#1d6fd6;stroke-width:2}.plot-area{fill:#1d6fd6;fill-opacity:.15}
.plot-empty{fill:#888;font-size:11px}.filters{display:flex;gap:1em;align-items:end;margin:.5em 0}
.filters input{width:12em}.pager{margin:.5em 0}.pager a{margin:0 .5em}
pre#log,pre#task-log{background:#111;color:#ddd;padding:.6em;max-height:70vh;overflow:auto;font-size:12px;white-space:pre-wrap}
.error{color:#a00}.empty{color:#666}.login{max-width:26em;margin:4em auto;background:#fff;padding:1.5em;border:1px solid #ddd}
.login input{width:100%;margin:.5em 0}
.tabs{margin:.3em 0 .6em}.tabs a{padding:.2em .7em;border:1px solid #cdd3da;background:#fff;color:#1d3557;text-decoration:none}
.tabs a.active{background:#1d3557;color:#fff}a.page.active{font-weight:700}
.timeline{background:#fff;border:1px solid #e3e6ea}.tl-row{fill:#f4f6f9}.tl-lane{font-size:11px;fill:#333}
.tl-grid{stroke:#e3e6ea}.tl-tick{font-size:10px;fill:#666}.span{fill:#2a9d8f;cursor:pointer}
.span-RUNNING{fill:#1d6fd6}.span-FAILED{fill:#c0392b}.span.selected{stroke:#111;stroke-width:2}
#span-detail{margin-top:.6em;max-width:60em}.metric-card{min-width:300px}.metric-card .value{font-size:18px;font-weight:600}
"""

JS = """
(function(){
  function refreshMain(){
    var main=document.getElementById('main'), box=document.getElementById('auto-refresh');
    if(!main||!box||!box.checked||main.dataset.refresh==='0')return;
    var a=document.activeElement; if(a&&(a.tagName==='INPUT'||a.tagName==='SELECT'))return;
    fetch(location.href,{credentials:'same-origin'}).then(function(r){
      if(r.redirected||r.status===401){location.reload();return null;}return r.text();
    }).then(function(t){
      if(!t)return;var d=new DOMParser().parseFromString(t,'text/html');
      var m=d.getElementById('main');if(m){main.innerHTML=m.innerHTML;reselect();}
    }).catch(function(){});
  }
  var chosen=null;
  function showSpan(r){
    var box=document.getElementById('span-detail');if(!box)return;
    var old=document.querySelector('rect.span.selected');if(old)old.classList.remove('selected');
    r.classList.add('selected');chosen=[r.dataset.task,r.dataset.attempt];
    box.textContent='';
    [['task',r.dataset.name],['task id',r.dataset.task],['attempt',r.dataset.attempt],
     ['state',r.dataset.state],['ran',r.dataset.ms+' ms'],['worker',r.dataset.worker],
     ['error',r.dataset.error]].forEach(function(kv){
      if(!kv[1])return;var p=document.createElement('div');var b=document.createElement('b');
      b.textContent=kv[0]+': ';p.appendChild(b);p.appendChild(document.createTextNode(kv[1]));box.appendChild(p);
    });
    var a=document.createElement('a');a.id='span-log';a.textContent='its output';
    a.href='/tasks/log?task_id='+encodeURIComponent(r.dataset.task)+'&attempt='+encodeURIComponent(r.dataset.attempt);
    box.appendChild(a);box.hidden=false;
  }
  function reselect(){
    if(!chosen)return;
    var r=document.querySelector('rect.span[data-task="'+chosen[0]+'"][data-attempt="'+chosen[1]+'"]');
    if(r)showSpan(r);
  }
  document.addEventListener('click',function(ev){
    var r=ev.target.closest&&ev.target.closest('rect.span');if(r)showSpan(r);
  });
  setInterval(refreshMain,5000);
  function follow(){
    var pre=document.getElementById('log'),box=document.getElementById('follow');
    if(!pre||!box)return;
    function tick(){
      if(!box.checked)return;
      var u='/logs/tail?name='+encodeURIComponent(pre.dataset.name)+'&offset='+pre.dataset.offset;
      fetch(u,{credentials:'same-origin'}).then(function(r){return r.ok?r.json():null;}).then(function(j){
        if(!j)return;if(j.reset)pre.textContent='';
        if(j.text){pre.textContent+=j.text;pre.scrollTop=pre.scrollHeight;}
        pre.dataset.offset=j.offset;
      }).catch(function(){});
    }
    pre.scrollTop=pre.scrollHeight;setInterval(tick,1000);
  }
  document.addEventListener('DOMContentLoaded',follow);
})();
"""
