#!/usr/bin/env python3
"""witness-check FILE [--since TIME]: read the records the witness
workload (tests/lib/witness.sh) appended to FILE and fail (exit 1) if two
copies of the instance ran at the same time.

A record is "RUN HOST COUNTER TIME": RUN is drawn by the process when
it starts (a restore keeps it: it is in memory), HOST is where the
record was written, COUNTER grows by one per record of one copy, TIME
is seconds on one clock every writer shares (the witness writes
CLOCK_REALTIME: a restored copy's /proc/uptime lags, its time namespace
keeps the clocks of the dump).  A copy's own records are in the order
it wrote them; copies are ordered by TIME alone, not by where their
lines are in the file.

A copy is a chain of records with the same RUN and HOST whose counter
grows by exactly one from record to record; a cold start, a restore
from an older image or a move to another host starts a new chain.  Two
chains whose time spans meet are two copies running at once: that is
the failure.  Between consecutive chains (a handover) it prints the gap
(last record of the old copy to the first of the new one) and the state
rolled back: how many increments of the old copy the new one does not
have (0 when it carried on from the old copy's last count), and how
long the old copy took to make them (from its record whose count the
new one starts from to its last; "-" when that record is not the old
copy's: a cold start from 0, an image older than the old copy).

--since T: also print the first chain that starts after T as
"since T: RUN HOST FIRST_TIME COUNTER" (exit 3 if there is none yet).
"""
import sys


class Chain:
    def __init__(self, run, host, n, t):
        self.run, self.host = run, host
        self.first_n = self.last_n = n
        self.t0 = self.t1 = t
        self.count = 1
        self.times = {n: t}     # counter -> when this copy wrote it

    def name(self):
        return "%s@%s" % (self.run, self.host)

    def span(self):
        return "[%.2f, %.2f] #%d..#%d" % (self.t0, self.t1, self.first_n,
                                          self.last_n)


def load(path):
    chains, bad = [], 0
    tips = {}       # (run, host) -> chains of that copy, newest last
    with open(path, errors="replace") as f:
        for line in f:
            p = line.split()
            try:
                run, host, n, t = p[0], p[1], int(p[2]), float(p[3])
            except (IndexError, ValueError):
                bad += 1
                continue
            if len(p) != 4:
                bad += 1
                continue
            # Two chains of one key (an image restored twice on one host)
            # each go on with their own counts: extend the one this
            # record continues, the newest such.
            own = tips.setdefault((run, host), [])
            for c in reversed(own):
                if c.last_n + 1 == n:
                    c.last_n, c.t1 = n, max(c.t1, t)
                    c.count += 1
                    c.times[n] = t
                    break
            else:
                c = Chain(run, host, n, t)
                own.append(c)
                chains.append(c)
    return chains, bad


def lost_time(a, b):
    """How long old copy a ran on state new copy b does not have: from
    a's record of the count b starts from to a's last; None if a did not
    write that count."""
    t = a.times.get(b.first_n - 1)
    return None if t is None else a.t1 - t


def main(argv):
    since = None
    args = argv[1:]
    if len(args) == 3 and args[1] == "--since":
        since = float(args[2])
    elif len(args) != 1:
        print("usage: witness-check FILE [--since TIME]", file=sys.stderr)
        return 2
    try:
        chains, bad = load(args[0])
    except OSError as e:
        print("witness: cannot read %s: %s" % (args[0], e.strerror))
        return 1
    if not chains:
        print("witness: no records in %s" % args[0])
        return 1
    chains.sort(key=lambda c: (c.t0, c.t1))
    rc = 0
    # Any chain starting at or before the latest end so far ran beside it.
    widest = chains[0]
    for c in chains[1:]:
        if c.t0 <= widest.t1:
            print("witness: OVERLAP: %s %s and %s %s ran at the same time"
                  % (widest.name(), widest.span(), c.name(), c.span()))
            rc = 1
        if c.t1 > widest.t1:
            widest = c
    records = sum(c.count for c in chains)
    print("witness: %d records, %d copies%s%s" % (records, len(chains),
          ", %d unreadable lines" % bad if bad else "",
          ", none overlapping" if rc == 0 else ""))
    if rc == 0:
        for i, (a, b) in enumerate(zip(chains, chains[1:]), 1):
            lost = lost_time(a, b)
            print("handover %d: %s -> %s: gap %.2f s (%.2f -> %.2f), "
                  "rolled back %d (#%d -> #%d, %s s)"
                  % (i, a.name(), b.name(), b.t0 - a.t1, a.t1, b.t0,
                     a.last_n - (b.first_n - 1), a.last_n, b.first_n,
                     "-" if lost is None else "%.2f" % lost))
    if since is not None:
        later = [c for c in chains if c.t0 > since]
        if not later:
            return rc or 3
        c = later[0]
        print("since %.2f: %s %s %.2f %d" % (since, c.run, c.host, c.t0,
                                             c.first_n))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
