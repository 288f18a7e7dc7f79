// The script of procgate's HTML report. It reads the report's data from
// the #report-data element (written by report.WriteHTML, see html.go for
// the compact form) and draws, per machine: a summary, a graph of the
// principal and target classes with a details panel, a sortable and
// filterable edge table, the findings and the what-if diffs; for a fleet
// also the merged findings. It uses no library and loads nothing.
'use strict';
(function () {
  const D = JSON.parse(document.getElementById('report-data').textContent);
  const S = D.s;
  const ACC = D.accesses; // visible, read_fscreds, read_realcreds, attach_realcreds, attach_fscreds
  const VISIBLE = 0, READ_FS = 1, READ_REAL = 2, ATTACH_REAL = 3, ATTACH_FS = 4;
  const ADMIN = 1, PRIVILEGED = 2, CONTAINER = 4;
  const SVGNS = document.getElementById('graph').namespaceURI;
  const $ = (sel) => document.querySelector(sel);

  // el builds an HTML element: el('td', {class: 'num'}, 'text', child…).
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, kids);
    return e;
  }
  // sv builds an SVG element.
  function sv(tag, attrs, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    append(e, kids);
    return e;
  }
  function setAttrs(e, attrs) {
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(e, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null || k === false) continue;
      e.append(k instanceof Node ? k : String(k));
    }
  }
  // fill replaces e's children with kids (nodes, strings, arrays; null
  // and false are left out).
  function fill(e, ...kids) {
    e.replaceChildren();
    append(e, kids);
  }
  function plural(n, one, many) {
    return n.toLocaleString('en') + ' ' + (n === 1 ? one : (many || one + 's'));
  }

  // Answers: the table of distinct answers and of their combinations.
  const answers = D.answers.map((a) => ({allowed: a[0] === 1, errno: S[a[1]], layer: S[a[2]], unknown: a[3].map((i) => S[i])}));
  const combos = D.combos.map((c) => c.map((i) => answers[i]));
  const grants = D.grants.map((g) => g.map((i) => S[i]));
  const steps = D.steps.map((s) => ({layer: S[s[0]], outcome: S[s[1]], reason: S[s[2]]}));

  // pairLevel summarises the two modes of read or attach: "yes", "no",
  // or the one mode that allows ("fscreds", "realcreds").
  function pairLevel(ans, fs, real) {
    const a = ans[fs].allowed, b = ans[real].allowed;
    if (a && b) return 'yes';
    if (a) return 'fscreds';
    if (b) return 'realcreds';
    return 'no';
  }
  const levelRank = {no: 0, realcreds: 1, fscreds: 1, yes: 2};

  // Machines are decoded on first use.
  const decoded = [];
  function machine(mi) {
    if (!decoded[mi]) decoded[mi] = decode(D.machines[mi]);
    return decoded[mi];
  }

  // decode expands one machine: classes with members, edges (runs of
  // unrelated edges over the targets and explicit ones), findings and
  // what-if diffs.
  function decode(m) {
    const mkClass = (kind) => (c, i) => ({
      i, kind, id: c[0], label: S[c[1]], flags: c[2], uid: c[3], euid: c[4], gid: c[5],
      caps: S[c[6]], userns: S[c[7]], login: S[c[8]], dumpable: c[9],
      admin: (c[2] & ADMIN) !== 0, privileged: (c[2] & PRIVILEGED) !== 0, container: (c[2] & CONTAINER) !== 0,
      members: [], edges: [], findings: [],
    });
    const P = m.principals.map(mkClass('principal'));
    const T = m.targets.map(mkClass('target'));
    const byID = new Map();
    for (const c of P.concat(T)) byID.set(c.id, c);
    for (let k = 0; k < m.procs.length; k += 4) {
      const mem = {pid: m.procs[k], comm: S[m.procs[k + 1]]};
      if (m.procs[k + 2]) P[m.procs[k + 2] - 1].members.push(mem);
      if (m.procs[k + 3]) T[m.procs[k + 3] - 1].members.push(mem);
    }
    for (const c of P.concat(T)) c.members.sort((a, b) => a.pid - b.pid);

    const edges = [];
    const mkEdge = (p, t, rel, pairs, combo, ex, g) => {
      const ans = combos[combo];
      const e = {
        p, t, rel, pairs, ans, ex, grants: grants[g],
        visible: ans[VISIBLE].allowed,
        read: pairLevel(ans, READ_FS, READ_REAL),
        attach: pairLevel(ans, ATTACH_FS, ATTACH_REAL),
        layer: ans[ATTACH_REAL].layer,
        unknown: ans.some((a) => a.unknown.length > 0),
        findings: [],
      };
      e.reaches = e.read !== 'no' || e.attach !== 'no';
      e.listed = e.reaches || e.grants.length > 0;
      edges.push(e);
      p.edges.push(e);
      t.edges.push(e);
    };
    m.edges.forEach((pe, i) => {
      const runs = pe[0], x = pe[1], p = P[i];
      let j = 0;
      for (let k = 0; k < runs.length; k += 2) {
        const code = runs[k], n = runs[k + 1];
        if (code >= 0) {
          for (let q = j; q < j + n; q++) mkEdge(p, T[q], '', p.members.length * T[q].members.length, code, null, 0);
        }
        j += n;
      }
      for (let k = 0; k < x.length; k += 7) {
        mkEdge(p, T[x[k]], S[x[k + 1]], x[k + 2], x[k + 3], [x[k + 4], x[k + 5]], x[k + 6]);
      }
    });
    edges.forEach((e, i) => { e.n = i; });
    const edgeKey = (p, t, rel) => p.i + '|' + t.i + '|' + rel;
    const edgesByKey = new Map();
    for (const e of edges) {
      const k = edgeKey(e.p, e.t, e.rel);
      if (!edgesByKey.has(k)) edgesByKey.set(k, []);
      edgesByKey.get(k).push(e);
    }

    const findings = m.findings.map((f) => {
      const x = {
        rank: f[0], severity: S[f[1]], kind: S[f[2]], title: S[f[3]],
        p: f[4] >= 0 ? P[f[4]] : null, t: f[5] >= 0 ? T[f[5]] : null,
        rel: S[f[6]], access: S[f[7]], pairs: f[8], ex: [f[9], f[10]], answer: S[f[11]],
        story: f[12].map((i) => steps[i]), unknown: f[13].map((i) => S[i]), grants: grants[f[14]],
      };
      if (x.p) x.p.findings.push(x);
      if (x.t && x.t !== x.p) x.t.findings.push(x);
      if (x.p && x.t) for (const e of edgesByKey.get(edgeKey(x.p, x.t, x.rel)) || []) e.findings.push(x);
      return x;
    });

    const diffEdges = (flat) => {
      const out = [];
      for (let k = 0; k < (flat || []).length; k += 10) {
        out.push({
          p: S[flat[k]], pLabel: S[flat[k + 1]], t: S[flat[k + 2]], tLabel: S[flat[k + 3]], rel: S[flat[k + 4]],
          access: S[flat[k + 5]], pairs: flat[k + 6], layer: S[flat[k + 7]], ex: [flat[k + 8], flat[k + 9]],
        });
      }
      return out;
    };
    const whatIf = (m.what_if || []).map((d) => {
      const by = [];
      for (let k = 0; k < d.by_principal.length; k += 4) {
        const b = d.by_principal;
        by.push({p: S[b[k]], label: S[b[k + 1]], removed: b[k + 2], added: b[k + 3]});
      }
      return {
        change: d.change, settings: d.settings, removed: diffEdges(d.removed), added: diffEdges(d.added),
        grantsRemoved: diffEdges(d.grants_removed), grantsAdded: diffEdges(d.grants_added), byPrincipal: by,
      };
    });
    return {raw: m, P, T, byID, edges, findings, whatIf};
  }

  // ---- the page ----

  let M = null; // the machine shown
  let selected = null; // the class whose details are shown

  function classRef(c) {
    if (!c) return el('span', {class: 'muted'}, '?');
    return el('a', {class: 'class-ref', 'data-ref': c.id, title: c.label, href: '#details', onclick: (ev) => { ev.preventDefault(); select(c, true); }}, c.id);
  }
  function idRef(id) {
    const c = M.byID.get(id);
    return c ? classRef(c) : el('code', null, id || '?');
  }

  function settingsText(s) {
    return 'yama ' + (s.yama >= 0 ? s.yama : 'off') + ', suid_dumpable ' + s.suid_dumpable + ', hidepid ' + s.hidepid;
  }

  function renderSummary() {
    const m = M.raw;
    const reach = M.edges.filter((e) => e.reaches).length;
    const sev = {high: 0, medium: 0, low: 0};
    for (const f of M.findings) sev[f.severity] = (sev[f.severity] || 0) + 1;
    const box = $('#summary');
    fill(box,
      el('h2', null, 'Machine ', el('code', null, m.name), ' ', el('span', {class: 'muted'}, '(' + m.source + ')')),
      el('div', {class: 'facts'},
        el('div', null, el('b', null, 'kernel '), m.kernel),
        el('div', null, el('b', null, 'modules '), m.lsms.join(', ') || 'none'),
        el('div', null, el('b', null, 'settings '), settingsText(m.settings)),
        el('div', null, el('b', null, 'processes '), m.processes.toLocaleString('en')),
        el('div', null, el('b', null, 'classes '), plural(M.P.length, 'principal'), ', ', plural(M.T.length, 'target')),
        el('div', null, el('b', null, 'edges '), M.edges.length.toLocaleString('en'), ' (', reach.toLocaleString('en'), ' reach)'),
        m.policy ? el('div', null, el('b', null, 'broker policy '), m.policy) : null),
      el('div', {class: 'chips'},
        ACC.map((a) => el('span', {class: 'chip', title: 'process pairs with ' + a + ' allowed'}, a + ' ', el('b', null, (m.counts.pairs[a] || 0).toLocaleString('en')), ' pairs')),
        el('span', {class: 'chip'}, 'findings ', el('b', null, M.findings.length), ': ',
          el('span', {class: 'sev high'}, sev.high + ' high'), ' ', el('span', {class: 'sev medium'}, sev.medium + ' medium'), ' ',
          el('span', {class: 'sev low'}, sev.low + ' low'))),
      m.unmodelled && m.unmodelled.length ? el('p', {class: 'warn'}, 'Active but not modelled (their policy is not read): ' + m.unmodelled.join(', ')) : null);
  }

  // ---- graph ----

  const NODE_H = 22, NODE_GAP = 6, TOP = 30;
  let graphWidth = 0; // the width of the graph's box when it was drawn

  // order sorts each column by the mean position of its neighbours
  // (barycentre), a few sweeps: edges cross less.
  function order(P, T, drawn) {
    const pos = new Map();
    P.forEach((c, i) => pos.set(c, i));
    T.forEach((c, i) => pos.set(c, i));
    const adj = new Map();
    for (const c of P.concat(T)) adj.set(c, []);
    for (const e of drawn) {
      adj.get(e.p).push(e.t);
      adj.get(e.t).push(e.p);
    }
    const sweep = (col) => {
      const key = new Map();
      for (const c of col) {
        const ns = adj.get(c);
        key.set(c, ns.length ? ns.reduce((s, n) => s + pos.get(n), 0) / ns.length : Infinity);
      }
      col.sort((a, b) => (key.get(a) - key.get(b)) || (a.i - b.i));
      col.forEach((c, i) => pos.set(c, i));
    };
    for (let k = 0; k < 4; k++) {
      sweep(T);
      sweep(P);
    }
    return [P, T];
  }

  function truncate(s, n) {
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  function renderGraph() {
    const svg = $('#graph');
    const hideAdmin = $('#hide-admin').checked;
    const drawn = M.edges.filter((e) => e.reaches && !(hideAdmin && e.p.admin));
    const [P, T] = order(M.P.slice(), M.T.slice(), drawn);
    graphWidth = $('#graph-box').clientWidth;
    const width = Math.max(720, graphWidth - 2);
    const colW = Math.min(360, Math.floor(width * 0.36));
    const xP = 8, xT = width - colW - 8;
    const rows = Math.max(P.length, T.length, 1);
    const height = TOP + rows * (NODE_H + NODE_GAP) + 8;
    const chars = Math.floor((colW - 56) / 6.6);
    const y = new Map();
    P.forEach((c, i) => y.set(c, TOP + i * (NODE_H + NODE_GAP)));
    T.forEach((c, i) => y.set(c, TOP + i * (NODE_H + NODE_GAP)));
    const connected = new Set();
    for (const e of drawn) {
      connected.add(e.p);
      connected.add(e.t);
    }

    const edgeLayer = sv('g', {class: 'edges'});
    for (const e of drawn) {
      const attach = e.attach !== 'no';
      const x1 = xP + colW, y1 = y.get(e.p) + NODE_H / 2, x2 = xT, y2 = y.get(e.t) + NODE_H / 2;
      const bend = e.rel ? 14 : 0;
      const mx = (x1 + x2) / 2;
      const d = 'M' + x1 + ',' + y1 + ' C' + mx + ',' + (y1 + bend) + ' ' + mx + ',' + (y2 + bend) + ' ' + x2 + ',' + y2;
      const w = Math.min(4, 1 + Math.log10(Math.max(1, e.pairs)) * 0.8);
      const what = (attach ? 'attach' : 'read') + (e.rel ? ' (' + e.rel + ')' : '');
      edgeLayer.append(sv('path', {
        class: 'edge ' + (attach ? 'attach' : 'read') + (e.rel ? ' related' : ''), d, 'stroke-width': w.toFixed(2),
        'data-edge': e.p.id + '-' + e.t.id, 'data-p': e.p.id, 'data-t': e.t.id,
      }, sv('title', null, e.p.id + ' → ' + e.t.id + ': ' + what + ', ' + plural(e.pairs, 'pair'))));
    }
    const nodeLayer = sv('g', {class: 'nodes'});
    const node = (c, x) => {
      let label = c.id + ' ' + c.label;
      if (c.admin && hideAdmin) label += ' (admin)';
      const cls = 'node ' + c.kind + (c.privileged ? ' privileged' : '') + (c.container ? ' container' : '') +
        (connected.has(c) ? '' : ' isolated') + (c === selected ? ' selected' : '');
      const count = c.login ? 'login' : '×' + c.members.length;
      return sv('g', {
        class: cls, 'data-class': c.id, transform: 'translate(' + x + ',' + y.get(c) + ')', tabindex: 0, role: 'button',
        'aria-label': c.kind + ' ' + c.id + ': ' + c.label,
        onclick: () => select(c, false),
        onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(c, false); } },
        onmouseenter: () => highlight(c), onmouseleave: () => highlight(selected),
      },
      sv('title', null, c.id + ': ' + c.label + '\n' + (c.login ? 'login user ' + c.login + ' without a process' : plural(c.members.length, 'process', 'processes'))),
      sv('rect', {width: colW, height: NODE_H, rx: 4}),
      sv('text', {x: 6, y: 15}, truncate(label, chars)),
      sv('text', {x: colW - 6, y: 15, 'text-anchor': 'end', class: 'count'}, count));
    };
    for (const c of P) nodeLayer.append(node(c, xP));
    for (const c of T) nodeLayer.append(node(c, xT));
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    fill(svg,
      sv('text', {x: xP, y: 18, class: 'col'}, 'Principals (' + P.length + ')'),
      sv('text', {x: xT, y: 18, class: 'col'}, 'Targets (' + T.length + ')'),
      edgeLayer, nodeLayer);
    svg.dataset.edges = String(drawn.length);
    highlight(selected);
  }

  // highlight brings out the edges of class c (none: all edges alike).
  function highlight(c) {
    const svg = $('#graph');
    svg.classList.toggle('focus', !!c);
    for (const p of svg.querySelectorAll('.edge.hl')) p.classList.remove('hl');
    if (!c) return;
    const attr = c.kind === 'principal' ? 'data-p' : 'data-t';
    for (const p of svg.querySelectorAll('.edge[' + attr + '="' + c.id + '"]')) p.classList.add('hl');
  }

  // ---- details ----

  const MEMBERS = 60, DETAIL_EDGES = 40, DETAIL_FINDINGS = 25;

  function answerChips(e) {
    return el('div', {class: 'answers'}, e.ans.map((a, i) => el('span', {
      class: 'chip ' + (a.allowed ? 'yes' : 'no'),
      title: a.unknown.length ? 'depends on unknown: ' + a.unknown.join('; ') : null,
    }, ACC[i] + ' ' + (a.allowed ? '✓' : '✗ ' + a.errno) + ' [' + a.layer + ']' + (a.unknown.length ? ' ?' : ''))));
  }

  function storyTable(f) {
    return el('table', {class: 'story'}, el('tbody', null, f.story.map((s, i) => el('tr', null,
      el('td', {class: 'muted'}, String(i + 1) + '.'),
      el('td', null, el('code', null, s.layer)),
      el('td', {class: 'outcome-' + s.outcome}, s.outcome),
      el('td', null, s.reason))),
    f.unknown.map((u) => el('tr', null, el('td'), el('td', {colspan: 3, class: 'unknown'}, 'depends on unknown: ' + u)))));
  }

  function findingStory(f) {
    return el('details', {class: 'story'},
      el('summary', null, '#' + f.rank + ' ', el('span', {class: 'sev ' + f.severity}, f.severity), ' ', f.title),
      el('div', {class: 'muted'}, f.access + (f.rel ? ' (' + f.rel + ')' : '') + ', e.g. pid ' + f.ex[0] + ' → pid ' + f.ex[1] + ': ' + f.answer),
      f.grants.length ? el('div', null, 'grants: ' + f.grants.join(', ')) : null,
      storyTable(f));
  }

  function select(c, scroll) {
    selected = c;
    for (const n of document.querySelectorAll('#graph .node.selected')) n.classList.remove('selected');
    const n = document.querySelector('#graph .node[data-class="' + c.id + '"]');
    if (n) n.classList.add('selected');
    highlight(c);
    renderDetails(c, false);
    if (scroll) $('#graph-section').scrollIntoView({block: 'start'});
  }

  function renderDetails(c, allMembers) {
    const box = $('#details');
    box.dataset.class = c.id;
    const facts = [
      ['uid', c.uid + (c.euid !== c.uid ? ' (euid ' + c.euid + ')' : '')],
      ['gid', c.gid],
      ['capabilities', c.caps || 'none'],
      ['user namespace', c.userns],
    ];
    if (c.login) facts.push(['login', c.login + ' (no process runs as it)']);
    if (c.kind === 'target' && c.dumpable >= 0) facts.push(['dumpable', c.dumpable]);
    const tags = [c.admin && 'administrator', c.privileged && 'privileged', c.container && 'in another user namespace'].filter(Boolean);

    const members = allMembers ? c.members : c.members.slice(0, MEMBERS);
    const memberList = c.members.length ? [
      el('ul', {class: 'members mono'}, members.map((m) => el('li', {'data-pid': m.pid}, el('code', null, String(m.pid)), ' ' + m.comm))),
      c.members.length > members.length ? el('button', {type: 'button', class: 'more', onclick: () => renderDetails(c, true)},
        'show all ' + c.members.length.toLocaleString('en')) : null,
    ] : el('p', {class: 'muted'}, 'no process (a login user of the passwd database)');

    // Edges that reach, the strongest first.
    const mine = c.edges.filter((e) => e.listed);
    mine.sort((a, b) => (levelRank[b.attach] - levelRank[a.attach]) || (levelRank[b.read] - levelRank[a.read]) || (b.pairs - a.pairs));
    const other = (e) => (c.kind === 'principal' ? e.t : e.p);
    const edgeItems = mine.slice(0, DETAIL_EDGES).map((e) => el('li', {class: 'edge-item'},
      c.kind === 'principal' ? '→ ' : '← ', classRef(other(e)), ' ', el('span', {class: 'muted'}, truncate(other(e).label, 60)),
      e.rel ? ' (' + e.rel + ')' : '', ', ' + plural(e.pairs, 'pair'),
      e.ex ? el('span', {class: 'muted'}, ', e.g. pid ' + e.ex[0] + ' → ' + e.ex[1]) : null,
      e.grants.length ? el('div', null, 'grants: ' + e.grants.join(', ')) : null,
      e.findings.length ? el('div', null, 'findings: ', e.findings.map((f) => '#' + f.rank).join(', ')) : null,
      answerChips(e)));

    fill(box,
      el('h3', null, c.id + ' ', el('span', {class: 'muted'}, c.kind + ' class')),
      el('p', null, c.label),
      tags.length ? el('div', {class: 'chips'}, tags.map((t) => el('span', {class: 'chip'}, t))) : null,
      el('div', {class: 'facts'}, facts.map(([k, v]) => el('div', null, el('b', null, k + ' '), String(v)))),
      el('button', {type: 'button', onclick: () => showEdgesOf(c)}, 'show its edges in the table'),
      el('h3', null, c.login ? 'Processes' : plural(c.members.length, 'process', 'processes')),
      memberList,
      el('h3', null, 'Findings (' + c.findings.length + ')'),
      c.findings.length ? c.findings.slice(0, DETAIL_FINDINGS).map(findingStory) : el('p', {class: 'muted'}, 'none'),
      c.findings.length > DETAIL_FINDINGS ? el('p', {class: 'muted'}, (c.findings.length - DETAIL_FINDINGS) + ' more in the findings list') : null,
      el('h3', null, (c.kind === 'principal' ? 'Reaches' : 'Reached by') + ' (' + mine.length + ' edges)'),
      mine.length ? el('ul', null, edgeItems) : el('p', {class: 'muted'}, 'no read or attach access, no grant'),
      mine.length > DETAIL_EDGES ? el('p', {class: 'muted'}, (mine.length - DETAIL_EDGES) + ' more in the edge table') : null);
    box.scrollTop = 0;
  }

  function showEdgesOf(c) {
    $('#edge-filter').value = c.id;
    table.filter = c.id;
    table.limit = PAGE;
    renderTable();
    $('#edges-section').scrollIntoView({block: 'start'});
  }

  // ---- edge table ----

  const PAGE = 500;
  const table = {key: 'p', dir: 1, filter: '', limit: PAGE};
  const sortKeys = {
    p: (e) => e.p.i, t: (e) => e.t.i, rel: (e) => e.rel, pairs: (e) => e.pairs,
    visible: (e) => (e.visible ? 1 : 0), read: (e) => levelRank[e.read], attach: (e) => levelRank[e.attach],
    layer: (e) => e.layer, grants: (e) => e.grants.length,
  };

  function haystack(e) {
    if (e.hay === undefined) {
      e.hay = [e.p.id, e.p.label, e.t.id, e.t.label, e.rel, e.layer, e.read, e.attach, e.grants.join(' ')].join(' ').toLowerCase();
    }
    return e.hay;
  }

  // matches: every word of the filter matches; a class id (p3, t12)
  // matches that class exactly, other words anywhere in the row.
  function matcher(filter) {
    const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return () => true;
    return (e) => words.every((w) => (/^[pt]\d+$/.test(w) ? e.p.id === w || e.t.id === w : haystack(e).includes(w)));
  }

  function levelCell(level, unknown) {
    return el('td', {class: level === 'yes' ? 'yes' : level === 'no' ? 'no' : 'part'}, level + (unknown ? '?' : ''));
  }

  function renderTable() {
    const reachesOnly = $('#reaches-only').checked;
    const match = matcher(table.filter);
    const rows = M.edges.filter((e) => (!reachesOnly || e.listed) && match(e));
    const key = sortKeys[table.key];
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      return (x < y ? -table.dir : x > y ? table.dir : 0) || (a.n - b.n);
    });
    const shown = rows.slice(0, table.limit);
    fill($('#edges tbody'), shown.map((e) => el('tr', {'data-p': e.p.id, 'data-t': e.t.id},
      el('td', null, classRef(e.p), ' ', el('span', {class: 'label'}, truncate(e.p.label, 48))),
      el('td', null, classRef(e.t), ' ', el('span', {class: 'label'}, truncate(e.t.label, 48))),
      el('td', null, e.rel || '–'),
      el('td', {class: 'num'}, e.pairs.toLocaleString('en')),
      levelCell(e.visible ? 'yes' : 'no', e.ans[VISIBLE].unknown.length > 0),
      levelCell(e.read, e.ans[READ_FS].unknown.length + e.ans[READ_REAL].unknown.length > 0),
      levelCell(e.attach, e.ans[ATTACH_FS].unknown.length + e.ans[ATTACH_REAL].unknown.length > 0),
      el('td', {title: e.ans.map((a, i) => ACC[i] + ': ' + (a.allowed ? 'allow' : a.errno) + ' [' + a.layer + ']').join('\n')}, e.layer),
      el('td', {title: e.grants.length > 3 ? e.grants.join(', ') : null},
        e.grants.length > 3 ? e.grants.slice(0, 3).join(', ') + ' … (+' + (e.grants.length - 3) + ')' : e.grants.join(', ') || '–'))));
    const count = $('#edge-count');
    count.textContent = rows.length.toLocaleString('en') + ' of ' + M.edges.length.toLocaleString('en') + ' edges' +
      (rows.length > shown.length ? ', showing ' + shown.length.toLocaleString('en') : '');
    count.dataset.rows = String(rows.length);
    const more = $('#edges-more');
    more.hidden = rows.length <= shown.length;
    more.textContent = 'Show ' + Math.min(PAGE, rows.length - shown.length).toLocaleString('en') + ' more';
    for (const th of document.querySelectorAll('#edges th')) {
      th.setAttribute('aria-sort', th.dataset.key === table.key ? (table.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
  }

  // ---- findings ----

  function renderFindings() {
    const sev = $('#finding-severity').value;
    const list = M.findings.filter((f) => !sev || f.severity === sev);
    $('#finding-count').textContent = list.length + ' of ' + M.findings.length;
    fill($('#findings'), list.map((f) => {
      const story = el('details', null, el('summary', null, 'story (' + f.story.length + ' steps)'));
      story.addEventListener('toggle', () => {
        if (story.open && story.children.length === 1) story.append(storyTable(f));
      });
      return el('li', {class: 'finding', 'data-rank': f.rank},
        el('div', {class: 'fhead'},
          el('span', {class: 'rank'}, '#' + f.rank),
          el('span', {class: 'sev ' + f.severity}, f.severity),
          el('span', {class: 'kind'}, f.kind),
          el('span', {class: 'title'}, f.title),
          el('span', {class: 'muted'}, plural(f.pairs, 'pair'))),
        el('div', {class: 'fmeta'}, classRef(f.p), ' → ', classRef(f.t), ' · ' + f.access + (f.rel ? ' · ' + f.rel : '') +
          ' · e.g. pid ' + f.ex[0] + ' → pid ' + f.ex[1] + ' · ' + f.answer + (f.grants.length ? ' · grants ' + f.grants.join(', ') : '')),
        f.story.length ? story : null);
    }));
    if (!M.findings.length) $('#findings').append(el('li', {class: 'muted'}, 'No findings: no principal other than an administrator reaches what it should not.'));
  }

  // ---- what-if ----

  const DIFF_ROWS = 200;

  function diffTable(d, limit) {
    const rows = [];
    const add = (sign, list, cls) => { for (const x of list) rows.push([sign, cls, x]); };
    add('−', d.removed, 'sign-minus');
    add('+', d.added, 'sign-plus');
    add('−grant', d.grantsRemoved, 'sign-minus');
    add('+grant', d.grantsAdded, 'sign-plus');
    const tbody = el('tbody', null, rows.slice(0, limit).map(([sign, cls, x]) => el('tr', null,
      el('td', {class: cls}, sign),
      el('td', null, idRef(x.p), ' ', el('span', {class: 'label'}, truncate(x.pLabel, 48))),
      el('td', null, idRef(x.t), ' ', el('span', {class: 'label'}, truncate(x.tLabel, 48))),
      el('td', null, x.rel || '–'), el('td', null, x.access), el('td', {class: 'num'}, x.pairs.toLocaleString('en')),
      el('td', null, x.layer || '–'), el('td', {class: 'muted'}, x.ex[0] + ' → ' + x.ex[1]))));
    return [el('table', null,
      el('thead', null, el('tr', null, ['', 'Principal', 'Target', 'Relation', 'Access', 'Pairs', 'Now decided by', 'Example'].map((h) => el('th', null, h)))),
      tbody), rows.length];
  }

  function renderWhatIf() {
    const box = $('#whatif');
    $('#whatif-section').hidden = !M.whatIf.length;
    $('#whatif-link').hidden = !M.whatIf.length;
    fill(box, M.whatIf.map((d) => {
      const sum = (l) => l.reduce((s, x) => s + x.pairs, 0);
      const div = el('div', {class: 'diff'});
      const draw = (limit) => {
        const [tbl, n] = diffTable(d, limit);
        fill(div,
          el('h3', null, 'What if ', el('code', null, d.change)),
          el('p', null, settingsText(d.settings) + ': ' + plural(d.removed.length, 'edge') + ' lose an access (' + plural(sum(d.removed), 'pair') + '), ' +
            plural(d.added.length, 'edge') + ' gain one (' + plural(sum(d.added), 'pair') + ')' +
            (d.grantsRemoved.length + d.grantsAdded.length ? '; grants: −' + d.grantsRemoved.length + ' +' + d.grantsAdded.length : '')),
          n ? el('div', {class: 'table-wrap'}, tbl) : el('p', {class: 'muted'}, 'No edge changes.'),
          n > limit ? el('button', {type: 'button', class: 'more', onclick: () => draw(limit + DIFF_ROWS * 5)}, 'show more (' + (n - limit) + ' left)') : null,
          d.byPrincipal.length ? el('p', null, 'By principal: ', d.byPrincipal.slice(0, 20).map((b, i) => [i ? '; ' : '', idRef(b.p), ' −' + b.removed + ' +' + b.added])) : null);
      };
      draw(DIFF_ROWS);
      return div;
    }));
  }

  // ---- fleet ----

  let fleetLimit = 200;
  function renderFleet() {
    const g = D.fleet;
    if (!g) return;
    $('#fleet').hidden = false;
    $('#fleet-link').hidden = false;
    fill($('#fleet-summary'),
      el('div', {class: 'facts'},
        el('div', null, el('b', null, 'machines '), g.machines),
        el('div', null, el('b', null, 'processes '), g.processes.toLocaleString('en')),
        el('div', null, el('b', null, 'classes (merged by key) '), plural(g.principals, 'principal'), ', ', plural(g.targets, 'target')),
        el('div', null, el('b', null, 'merged findings '), g.findings.length)),
      el('div', {class: 'chips'}, ACC.map((a) => el('span', {class: 'chip'}, a + ' ', el('b', null, (g.counts.pairs[a] || 0).toLocaleString('en')), ' pairs'))));
    const rows = g.findings.slice(0, fleetLimit).map((f) => el('tr', null,
      el('td', null, el('span', {class: 'sev ' + S[f[0]]}, S[f[0]])), el('td', {class: 'mono'}, S[f[1]]),
      el('td', null, S[f[2]]), el('td', null, S[f[3]]), el('td', null, S[f[4]]), el('td', {class: 'num'}, f[5].toLocaleString('en')),
      el('td', null, f[6].map((i) => S[i]).join(', '))));
    if (!g.findings.length) rows.push(el('tr', null, el('td', {colspan: 7, class: 'muted'}, 'No findings on any machine.')));
    fill($('#fleet-findings tbody'), rows);
    const more = $('#fleet-more');
    more.hidden = g.findings.length <= fleetLimit;
    more.textContent = 'Show more (' + Math.max(0, g.findings.length - fleetLimit) + ' left)';
  }

  // ---- wiring ----

  function show(mi) {
    M = machine(mi);
    selected = null;
    table.filter = $('#edge-filter').value = '';
    table.limit = PAGE;
    fill($('#details'), el('p', {class: 'muted'}, 'Click a class in the graph, or a class id in a table, to see its processes, its edges and the stories of its findings.'));
    delete $('#details').dataset.class;
    renderSummary();
    renderGraph();
    renderTable();
    renderFindings();
    renderWhatIf();
  }

  function init() {
    $('#generated').textContent = 'generated ' + D.generated;
    if (!D.machines.length) {
      fill($('#summary'), el('p', null, 'The report has no machine.'));
      return;
    }
    if (D.machines.length > 1) {
      const sel = $('#machine');
      D.machines.forEach((m, i) => sel.append(el('option', {value: i}, m.name)));
      sel.addEventListener('change', () => show(Number(sel.value)));
      $('#machine-picker').hidden = false;
    }
    renderFleet();
    $('#fleet-more').addEventListener('click', () => { fleetLimit += 1000; renderFleet(); });
    $('#hide-admin').addEventListener('change', renderGraph);
    $('#reaches-only').addEventListener('change', () => { table.limit = PAGE; renderTable(); });
    let timer = 0;
    $('#edge-filter').addEventListener('input', (ev) => {
      clearTimeout(timer);
      timer = setTimeout(() => { table.filter = ev.target.value; table.limit = PAGE; renderTable(); }, 120);
    });
    $('#edges-more').addEventListener('click', () => { table.limit += PAGE; renderTable(); });
    for (const th of document.querySelectorAll('#edges th')) {
      th.querySelector('button').addEventListener('click', () => {
        const k = th.dataset.key;
        table.dir = table.key === k ? -table.dir : (k === 'pairs' || k === 'read' || k === 'attach' || k === 'grants' ? -1 : 1);
        table.key = k;
        renderTable();
      });
    }
    $('#finding-severity').addEventListener('change', renderFindings);
    // Redraw the graph when its box changes width (a window resized, a
    // scroll bar that comes or goes).
    const resized = () => {
      if (M && Math.abs($('#graph-box').clientWidth - graphWidth) > 4) renderGraph();
    };
    if (typeof ResizeObserver === 'function') new ResizeObserver(resized).observe($('#graph-box'));
    else window.addEventListener('resize', resized);
    show(0);
    document.body.dataset.ready = 'true';
  }

  init();
})();
