// codexbro js_repl kernel: a persistent Node REPL context driven by JSON lines.
// Requests on stdin:  {"id": "...", "code": "..."}
// Replies on the fd named by JS_REPL_FD: {"id", "status": "completed"|"error", "logs": [...],
//   "output": "<inspected result>", "error": "<message>"}
// Node's REPL gives persistence of declarations and top-level await; errors thrown by a cell are
// reported by the REPL on its output stream, which is used for nothing else here.
'use strict';
const repl = require('node:repl');
const util = require('node:util');
const vm = require('node:vm');
const fs = require('node:fs');
const readline = require('node:readline');
const { PassThrough } = require('node:stream');

const replyFd = Number(process.env.JS_REPL_FD || 3);
const reply = (obj) => fs.writeSync(replyFd, JSON.stringify(obj) + '\n');

const input = new PassThrough();
const sink = new PassThrough();
const server = repl.start({ input, output: sink, prompt: '', terminal: false, useColors: false });
let current = null;

const capture = (level) => (...args) => {
  const line = util.format(...args);
  if (current) current.logs.push(level === 'log' ? line : `${level}: ${line}`);
  else process.stderr.write(line + '\n');
};
server.context.console = Object.assign(Object.create(console), {
  log: capture('log'), info: capture('log'), debug: capture('log'), warn: capture('warn'), error: capture('error'),
});

function cleanStack(text) {
  return text.split('\n').filter((l) => !/node:(vm|repl|domain)|REPLServer|kernel\.js|new Promise/.test(l))
    .join('\n').replace(/^Uncaught /, '').trim();
}

function finish(status, fields) {
  if (!current) return;
  const done = current;
  current = null;
  reply({ id: done.id, status, logs: done.logs, ...fields });
}

sink.on('data', (chunk) => {
  const text = chunk.toString();
  if (current && text.trim()) finish('error', { output: '', error: cleanStack(text) });
});

function run(id, code) {
  current = { id, logs: [] };
  try {
    server.eval(code, server.context, 'js_repl', (err, result) => {
      if (!current || current.id !== id) return;
      if (err) {
        let message = err.message || String(err);
        try { new vm.Script(code, { filename: 'js_repl' }); } catch (e) { message = `${e.name}: ${e.message}`; }
        if (!message) message = 'SyntaxError: unexpected end of input';
        finish('error', { output: '', error: message });
      } else {
        finish('completed', { output: result === undefined ? '' : util.inspect(result, { depth: 4 }) });
      }
    });
  } catch (e) {
    finish('error', { output: '', error: cleanStack(String(e && e.stack || e)) });
  }
}

const queue = [];
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let req;
  try { req = JSON.parse(line); } catch { return; }
  queue.push(req);
  pump();
}).on('close', () => process.exit(0));

function pump() {
  if (current || !queue.length) return;
  const req = queue.shift();
  run(req.id, req.code);
  const wait = setInterval(() => { if (!current) { clearInterval(wait); pump(); } }, 5);
}
reply({ id: null, status: 'ready' });
