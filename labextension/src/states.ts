/**
 * How a group's procs read in its header (header.ts): a proc's state with how it ended, and
 * how many procs are in each state. Pure, like `GroupStatus.counts()` on the kernel's side
 * (`ipylogfwd/group/status.py`), which says the same in `%procs`.
 */

/** A proc's state with how it ended: "idle", "exited 3", "killed SIGKILL". */
export function stateLabel(state: string, exitText: string): string {
  const exited = /exited with code (-?\d+)/.exec(exitText);
  if (exited !== null) {
    return `${state} ${exited[1]}`;
  }
  const killed = /killed by (\S+)/.exec(exitText);
  return killed !== null ? `${state} ${killed[1]}` : state;
}

/** "14 idle · 1 running · 1 exited 3": the most common first. */
export function stateCounts(labels: readonly string[]): string {
  const by = new Map<string, number>();
  for (const l of labels) {
    by.set(l, (by.get(l) ?? 0) + 1);
  }
  return [...by.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([label, n]) => `${n} ${label}`)
    .join(' · ');
}
