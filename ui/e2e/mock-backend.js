// Injected before the page's scripts: a fake Tauri IPC (window.__TAURI_INTERNALS__) answering
// Postern's commands the way src-tauri/src/commands.rs does. Every call is recorded in
// window.__calls for the test to read.
(() => {
  const calls = [];
  window.__calls = calls;
  const status = {
    icon: 'online', status_line: 'Online · last fetch 10:42 · 12 messages', paused: false,
    fetching: false, messages_received: 12, last_fetch: '10:42', problems: [],
  };
  const config = {
    domains: ['office.example'],
    queue_servers: [{ host: 'mail.isp.example', port: 25, protocol: 'etrn', tls: 'opportunistic', username: 'office',
      allow_plaintext_auth: false, allow_insecure_turn: false, timeout: '30s' }],
    inbound: { listen: ['0.0.0.0:25'], deliver: 'maildir:/srv/mail/Maildir', hostname: 'gate.office.example',
      max_message_size: 52428800, max_connections: 20, idle_timeout: '5m' },
    link: { probe: 'auto', refetch_every: '15m', connect_back_timeout: '2m' },
    dns: { nameservers: [] },
    desktop: { notifications: true },
  };
  const mx = (domain) => ({
    domain,
    complete: true,
    office_host: `mail.${domain}`,
    mx: [{ preference: 10, host: `mail.${domain}.`, addresses: ['198.51.100.7'] }, { preference: 20, host: 'backup.isp.example.', addresses: ['203.0.113.9'] }],
    recommended_protocol: 'etrn',
    findings: [
      { id: 'office.port25-closed', severity: 'error', subject: `mail.${domain}`, evidence: 'Does not answer on port 25.', fix: 'Forward port 25 on your router to this computer, or use ATRN.' },
      { id: 'queue.retention', severity: 'warning', subject: 'backup.isp.example', evidence: 'Keeps mail for 5 days only.', fix: 'Fetch at least every few days.' },
      { id: 'queue.etrn', severity: 'info', subject: 'backup.isp.example', evidence: 'Offers ETRN.' },
    ],
  });
  let outboundQueue = [
    { id: '1733071200-a1', sender: 'boss@office.example', size: 48213, age_seconds: 5400, attempts: 4,
      recipients: [{ address: 'slow@example.net', state: 'queued', reply: '450 4.2.0 try later' }, { address: 'good@example.net', state: 'delivered', reply: '250 2.0.0 Ok' }],
      last_reply: '450 4.2.0 try later', meaning: 'the smarthost cannot take it right now (mailbox busy, rate limit or full); it will be tried again',
      next_attempt: '2026-12-01T11:20:00+01:00' },
    { id: '1733074800-b2', sender: 'anna@office.example', size: 2048, age_seconds: 120, attempts: 0,
      recipients: [{ address: 'far@example.net', state: 'queued', reply: null }], last_reply: null, meaning: null, next_attempt: null },
  ];
  // The journal (read_journal) and the dashboard, as engine/src/journal and dashboard.rs give them.
  const HOUR = 3600 * 1000;
  const now = Date.now();
  const journal = [];
  const add = (at, kind, text, event) => journal.push({ id: journal.length + 1, at, kind, text, event });
  for (let i = 0; i < 120; i++) {
    const at = now - (120 - i) * 0.5 * HOUR;
    add(at, 'link', 'link up: mail.isp.example:25 answered', { type: 'link_changed', up: true, reason: 'mail.isp.example:25 answered' });
    add(at + 1000, 'fetch', 'mail.isp.example:25 office.example: 250 Queuing started (the server is sending the waiting mail)', { type: 'fetch_finished' });
    add(at + 4000, 'message', `received from <sender-${i}@customer.example> to <info@office.example> (2.0 KB) from 192.0.2.5 via etrn, stored in /srv/mail/Maildir/new/${i}`, { type: 'message_received' });
  }
  add(now - 2 * HOUR, 'problem', 'mail.isp.example:25 office.example: 459 office.example: service unavailable (the server does not keep mail for this domain)', { type: 'fetch_failed' });
  add(now - HOUR, 'config', 'settings applied: refetch_every 15m', { type: 'config_reloaded', changes: [] });
  // The neighbour fetching the mail this office holds for it (the backup MX).
  add(now - 40 * 60 * 1000, 'backup', 'backup MX: neighbour.example asked for its mail (ATRN by neighbour): 3 held', { type: 'backup_asked', domain: 'neighbour.example', by: 'ATRN by neighbour', held: 3 });
  add(now - 40 * 60 * 1000 + 500, 'backup', 'backup MX: releasing 3 message(s) held for neighbour.example to 203.0.113.9:366 (ATRN by neighbour)', { type: 'backup_release_started' });
  add(now - 40 * 60 * 1000 + 900, 'backup', 'backup MX: neighbour.example: 3 delivered, 0 still held, 0 returned', { type: 'backup_release_finished' });
  journal.sort((a, b) => a.at - b.at).forEach((e, i) => { e.id = i + 1; });
  const readJournal = ({ query }) => {
    const limit = query.limit ?? 200;
    const grep = query.grep?.toLowerCase();
    const hits = journal.filter((e) => (!query.kind || e.kind === query.kind) && (!grep || e.text.toLowerCase().includes(grep))
      && (query.before_id == null || e.id < query.before_id) && (query.since == null || e.at >= query.since)).reverse();
    return { entries: hits.slice(0, limit), more: hits.length > limit };
  };
  const midnight = new Date(); midnight.setHours(0, 0, 0, 0);
  const thisHour = new Date(); thisHour.setMinutes(0, 0, 0);
  const perDay = Array.from({ length: 30 }, (_, i) => {
    const d = new Date(midnight); d.setDate(d.getDate() - (29 - i));
    return { start: d.getTime(), received: [3, 7, 0, 12, 5][i % 5], sent: [1, 2, 0, 4][i % 4] };
  });
  const perHour = Array.from({ length: 48 }, (_, i) => ({ start: thisHour.getTime() - (47 - i) * HOUR, received: i % 3 === 0 ? 2 : 0, sent: i % 6 === 0 ? 1 : 0 }));
  const dashboard = {
    icon: 'online', status_line: status.status_line, link: 'up', link_since: new Date(now - 3 * HOUR).toISOString(),
    paused: false, fetching: false, received_since_start: 12,
    servers: [
      { server: 'mail.isp.example:25', fetching: false, last_at: new Date(now - 10 * 60 * 1000).toISOString(),
        last_outcomes: [{ server: 'mail.isp.example:25', domain: 'office.example', step: 'ETRN office.example', code: 250, text: 'Queuing started',
          disposition: 'released', meaning: 'the server is sending the waiting mail', fix: null, pending: null }],
        next_attempt: new Date(now + 5 * 60 * 1000).toISOString(), retrying: false, attempt: 0, awaiting_connect_back: false },
      { server: 'backup.isp.example:366', fetching: false, last_at: new Date(now - 10 * 60 * 1000).toISOString(),
        last_outcomes: [{ server: 'backup.isp.example:366', domain: 'office.example', step: 'ATRN office.example', code: 451, text: 'try again later',
          disposition: 'retry', meaning: 'the server is busy; Postern tries again', fix: null, pending: null }],
        next_attempt: new Date(now + 2 * 60 * 1000).toISOString(), retrying: true, attempt: 2, awaiting_connect_back: false },
    ],
    stats: { received_today: 9, received_this_week: 41, outbound_queued: 2, per_day: perDay, per_hour: perHour,
      // Six dequeues: five brought mail after these waits, one (null) brought none.
      per_dequeue: [4.2, 2.1, null, 30, 3.3, 2.8].map((seconds, i) => ({ at: now - (6 - i) * 6 * HOUR, server: 'mail.isp.example:25', protocol: 'etrn',
        seconds, from_link_up: seconds === null ? null : seconds + 1, messages: seconds === null ? 0 : 2 })) },
    stats_error: null,
    attention: [{ subject: 'backup.isp.example:366 for office.example: the server is busy; Postern tries again', fix: 'Nothing to do unless it lasts; ask the ISP if it does', at: null }],
    backup: [
      { domain: 'neighbour.example', held: 12, bytes: 48_000, oldest: new Date(now - 5 * HOUR).toISOString(), last_fetch: new Date(now - 40 * 60 * 1000).toISOString(),
        last_fetch_by: 'ATRN by neighbour', configured: true, returns_at: new Date(now + 7 * 24 * HOUR).toISOString(), needs_attention: false },
      { domain: 'slow.example', held: 3, bytes: 900, oldest: new Date(now - 6 * 24 * HOUR).toISOString(), last_fetch: null,
        last_fetch_by: null, configured: true, returns_at: new Date(now + 24 * HOUR).toISOString(), needs_attention: true },
    ],
  };
  window.__dashboard = dashboard;

  const listeners = {};
  let nextId = 1;
  const callbacks = {};
  const handlers = {
    get_status: () => status,
    load_config: () => ({ path: '/home/office/.config/org.postern.Postern/postern.toml', exists: window.__noConfig ? false : true,
      config: window.__noConfig ? null : config, error: null }),
    check_mx: ({ domain }) => mx(domain),
    probe_queue_server: ({ host, port }) => {
      if (host === 'unreachable.example') throw `cannot connect to ${host}:${port}: connection refused. Check the server name and port with your ISP, and that this computer is online`;
      if (host === 'odmr.isp.example') return { server: `${host}:${port}`, greeting: `${host} ESMTP`, etrn: true, atrn: true, starttls: true, auth: ['PLAIN'],
        recommended: 'atrn', advice: 'ATRN: the mail comes back over this connection, so port 25 need not reach this computer' };
      return { server: `${host}:${port}`, greeting: `${host} ESMTP Postfix`, etrn: true, atrn: false, starttls: true, auth: [],
        recommended: 'etrn', advice: 'ETRN: the server delivers to this computer\'s port 25, which must be reachable from the internet' };
    },
    // The office's MX address 198.51.100.7 is this computer's (as in mx() above).
    check_reachability: ({ domains, listenAddress, listenPort }) => {
      const subject = `198.51.100.7 (mail.${domains[0]})`;
      if (listenAddress !== '0.0.0.0' && listenAddress !== '198.51.100.7') return { verdict: 'unreachable', findings: [
        { id: 'etrn.listener-not-on-address', severity: 'error', subject, evidence: `198.51.100.7 is this machine's, but the inbound listener only listens on ${listenAddress}:${listenPort}: mail released by ETRN cannot be delivered.`, fix: `Add "198.51.100.7:25" (or "0.0.0.0:25") to [inbound] listen.` },
        { id: 'etrn.cannot-deliver', severity: 'error', subject: domains[0], evidence: 'ETRN only asks the queuing server to deliver to the office\'s MX address; as set up, that delivery cannot reach this machine.', fix: 'Use ATRN (`protocol = "atrn"`, port 366, with a username): the mail then comes back over Postern\'s own connection, so nothing inbound is needed.' },
      ] };
      if (listenPort !== 25) return { verdict: 'needs_forwarding', findings: [
        { id: 'etrn.listener-port', severity: 'warning', subject, evidence: `The queuing server delivers to port 25 of 198.51.100.7, but the inbound listener is on port ${listenPort}.`, fix: `Forward TCP port 25 to port ${listenPort} on this machine (router port forwarding, or a firewall redirect rule), or listen on port 25.` },
      ] };
      return { verdict: 'reachable', findings: [
        { id: 'etrn.reachable', severity: 'ok', subject, evidence: 'The office\'s MX address 198.51.100.7 is this machine\'s, and the inbound listener accepts connections there on port 25: mail released by ETRN can be delivered.' },
      ] };
    },
    probe_smarthost: ({ outbound }) => [
      { id: 'smarthost.answers', severity: 'ok', subject: outbound.smarthost, evidence: 'The smarthost answered: "smtp.isp.example ESMTP Postfix"' },
      { id: 'smarthost.tls-ok', severity: 'ok', subject: outbound.smarthost, evidence: 'STARTTLS works and the certificate is valid for smtp.isp.example.' },
      ...(outbound.smarthost_username ? [{ id: 'smarthost.auth-ok', severity: 'ok', subject: outbound.smarthost,
        evidence: `The smarthost offers PLAIN LOGIN; Postern logs in as ${outbound.smarthost_username} with PLAIN.` }] : []),
    ],
    test_delivery: ({ target }) => `${target.replace(/^maildir:/, '')} is ready for mail`,
    set_secret: () => null,
    save_config: () => status,
    fetch_now: () => {
      setTimeout(() => emit('engine-event', { type: 'fetch_started', server: 'backup.isp.example:25', protocol: 'etrn', domains: ['office.example'] }), 10);
      setTimeout(() => emit('engine-event', { type: 'fetch_finished', server: 'backup.isp.example:25', outcomes: [{ server: 'backup.isp.example:25', domain: 'office.example', step: 'ETRN office.example', code: 250, text: 'Queuing started', disposition: 'released', meaning: 'the server is sending the waiting mail', fix: null, pending: null }] }), 20);
      setTimeout(() => emit('engine-event', { type: 'message_received', id: '1', from: 'anna@customer.example', to: ['info@office.example'], size: 2048, peer: '192.0.2.5', via: 'etrn', location: '/srv/mail/Maildir/new/1' }), 30);
      setTimeout(() => emit('journal-entry', { at: Date.now(), kind: 'message', text: 'received from <anna@customer.example> to <info@office.example> (2.0 KB) from 192.0.2.5 via etrn, stored in /srv/mail/Maildir/new/1', event: { type: 'message_received' } }), 30);
      return null;
    },
    pause: () => null,
    resume: () => null,
    recent_activity: () => [
      { type: 'listening', addresses: ['0.0.0.0:25'] },
      { type: 'link_changed', up: true, reason: 'mail.isp.example:25 answered' },
      { type: 'fetch_finished', server: 'mail.isp.example:25', outcomes: [{ server: 'mail.isp.example:25', domain: 'office.example', step: 'ETRN office.example', code: 459, text: 'office.example: service unavailable', disposition: 'permanent', meaning: 'the server does not keep mail for this domain', fix: 'Ask your ISP to add office.example to fast_flush_domains', pending: null }] },
      { type: 'message_received', id: '2', from: 'bob@supplier.example', to: ['info@office.example'], size: 4096, peer: '192.0.2.5', via: 'etrn', location: '/srv/mail/Maildir/new/2' },
    ],
    open_window: () => null,
    read_journal: readJournal,
    dashboard: () => (window.__noBackup ? { ...window.__dashboard, backup: [] } : window.__dashboard),
    'plugin:event|listen': ({ event, handler }) => {
      (listeners[event] ??= []).push(handler);
      return nextId++;
    },
    'plugin:event|unlisten': () => null,
    'plugin:window|close': () => { window.__closed = true; return null; },
    'plugin:dialog|open': () => '/home/office/Maildir',
    // The outbound queue (engine/src/outbound/queue.rs QueueEntry); Drop takes a message out.
    queue_list: () => structuredClone(outboundQueue),
    queue_action: ({ action }) => {
      if (action.action === 'drop') {
        outboundQueue = outboundQueue.filter((e) => e.id !== action.id);
        return `${action.id} dropped (no DSN sent)`;
      }
      if (action.action === 'retry') {
        setTimeout(() => {
          outboundQueue = outboundQueue.filter((e) => e.id !== action.id);
          emit('engine-event', { type: 'outbound_delivered', id: action.id, to: 'far@example.net', via: 'smtp://smtp.isp.example:587', reply: '250 2.0.0 Ok: queued' });
        }, 20);
        return `${action.id} will be attempted now`;
      }
      return `${outboundQueue.length} message(s) will be attempted now`;
    },
    starts_at_login: () => window.__atLogin ?? false,
    set_start_at_login: (args) => { window.__atLogin = args.on; return window.__atLogin; },
  };
  function emit(event, payload) {
    for (const id of listeners[event] ?? []) callbacks[id]?.({ event, id: 0, payload });
  }
  window.__emit = emit;
  window.__TAURI_EVENT_PLUGIN_INTERNALS__ = { unregisterListener: () => {} };
  window.__TAURI_INTERNALS__ = {
    metadata: { currentWindow: { label: 'wizard' }, currentWebview: { windowLabel: 'wizard', label: 'wizard' } },
    transformCallback: (cb) => { const id = nextId++; callbacks[id] = cb; return id; },
    unregisterCallback: (id) => { delete callbacks[id]; },
    convertFileSrc: (p) => p,
    invoke: async (cmd, args = {}) => {
      calls.push([cmd, args]);
      const h = handlers[cmd];
      if (!h) throw `no mock for ${cmd}`;
      return h(args);
    },
  };
})();
