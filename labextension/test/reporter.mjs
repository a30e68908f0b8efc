// A reporter for `node --test` (see the "test" script in package.json): one summary line when
// everything passes, and every failure in full (its name, where it is, the assertion with its
// diff, and what the test files printed) when something fails. Node's own reporters either
// print every test (spec, tap) or print failures without a count of what ran (dot).
//
// Node 20+ loads it with --test-reporter=./test/reporter.mjs; it receives the runner's events
// and yields the text to print.

import { inspect } from 'node:util';

const started = performance.now();

/** What a failure looks like, from the error node:test reports. */
function describeError(error) {
  // An assertion or exception in the test body arrives wrapped in ERR_TEST_FAILURE; its cause
  // is the real error (an AssertionError's message carries the actual/expected diff).
  const real = error && error.code === 'ERR_TEST_FAILURE' && error.cause ? error.cause : error;
  if (real instanceof Error || (real && typeof real === 'object' && 'stack' in real)) {
    // Node's own frames (the test runner, async hooks) say nothing about the test.
    // The last frame also opens the error's own properties (" {"): keep that brace.
    const kept = [];
    for (const line of inspect(real, { colors: false, depth: 6 }).split('\n')) {
      if (!/^\s+at (.*\()?node:/.test(line)) {
        kept.push(line);
      } else if (line.endsWith(' {') && kept.length) {
        kept[kept.length - 1] += ' {';
      }
    }
    return kept.join('\n');
  }
  return String(real);
}

function indent(text, prefix = '    ') {
  return text
    .split('\n')
    .map(line => (line ? prefix + line : line))
    .join('\n');
}

export default async function* summaryReporter(source) {
  let passed = 0;
  let skipped = 0;
  let todo = 0;
  const failures = [];
  const output = []; // what test files printed (stdout/stderr), shown when something fails
  const diagnostics = []; // the runner's own notes, e.g. a file that could not be loaded
  const names = new Map(); // file -> names of the tests being started, by nesting level

  for await (const event of source) {
    const data = event.data ?? {};
    switch (event.type) {
      case 'test:start': {
        const key = data.file ?? '';
        const stack = names.get(key) ?? [];
        stack.length = data.nesting;
        stack.push(data.name);
        names.set(key, stack);
        break;
      }
      case 'test:pass':
        if (data.details?.type === 'suite') {
          break;
        }
        if (data.skip !== undefined && data.skip !== false) {
          skipped++;
        } else if (data.todo !== undefined && data.todo !== false) {
          todo++;
        } else {
          passed++;
        }
        break;
      case 'test:fail': {
        const error = data.details?.error;
        // A suite (or file) whose subtests failed: those failures are reported on their own.
        if (error?.failureType === 'subtestsFailed') {
          break;
        }
        if (data.todo !== undefined && data.todo !== false) {
          todo++;
          break;
        }
        const parents = (names.get(data.file ?? '') ?? []).slice(0, data.nesting);
        failures.push({
          name: [...parents, data.name].join(' > '),
          where: data.file
            ? `${data.file}${data.line ? `:${data.line}:${data.column}` : ''}`
            : '',
          error: describeError(error)
        });
        break;
      }
      case 'test:stdout':
      case 'test:stderr':
        output.push(data.message);
        break;
      case 'test:diagnostic':
        diagnostics.push(data.message);
        break;
      default:
        break;
    }
  }

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const extra = [
    skipped ? `${skipped} skipped` : '',
    todo ? `${todo} todo` : ''
  ].filter(Boolean);
  const tail = extra.length ? `, ${extra.join(', ')}` : '';

  if (failures.length === 0) {
    if (passed === 0) {
      // Nothing ran: say so rather than print a reassuring "0 passed".
      yield `labextension: no tests ran (${seconds} s)\n`;
      if (diagnostics.length) {
        yield indent(diagnostics.join('\n')) + '\n';
      }
      return;
    }
    yield `labextension: ${passed} tests passed${tail} (${seconds} s)\n`;
    return;
  }

  for (const [i, failure] of failures.entries()) {
    yield `\nFAIL ${i + 1}/${failures.length}: ${failure.name}\n`;
    if (failure.where) {
      yield `  at ${failure.where}\n`;
    }
    yield indent(failure.error) + '\n';
  }
  if (output.length) {
    yield '\nOutput of the test files:\n';
    yield indent(output.join('').replace(/\n$/, '')) + '\n';
  }
  yield (
    `\nlabextension: ${failures.length} of ${passed + failures.length} tests FAILED${tail}` +
    ` (${seconds} s)\n`
  );
}
