"""The ways the TCP section runs every contender (issue 13):

- pinned: each proxy with --workers workers on the first CPUs, clients and
  backends on the others: the proxy's own cost, isolated;
- unpinned: one worker each and nothing pinned: proxy, wrk, iperf3 and
  the backends share every CPU, as on a small host that runs services
  beside the proxy;
- deployed: unpinned, every proxy on its own defaults for the machine
  (see contenders.py: a worker count of None).

"direct" has no proxy: in the unpinned modes its client and backends are
simply unpinned too. Only the pinned mode measures idle connections: their
memory does not depend on where threads run."""

import os

NAMES = ("pinned", "unpinned", "deployed")


class Mode:
    def __init__(self, name, title, workers, proxy_cpus, load_cpus, pinning):
        self.name = name
        self.title = title
        self.workers = workers          # None: each proxy's default
        self.proxy_cpus = proxy_cpus    # taskset lists; in the unpinned
        self.load_cpus = load_cpus      # modes both are every CPU
        self.pinning = pinning          # one sentence for the report
        self.measures_idle = name == "pinned"

    def describe(self):
        return {"title": self.title, "workers": self.workers, "proxy_cpus": self.proxy_cpus,
                "load_cpus": self.load_cpus, "pinning": self.pinning}


def cpu_plan(workers):
    """(proxy CPUs, load CPUs) as taskset lists: the proxies get the first
    WORKERS CPUs, clients and backends the rest. None, None when there are
    too few CPUs to separate them."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= workers:
        return None, None
    proxy, load = cpus[:workers], cpus[workers:]
    return ",".join(map(str, proxy)), ",".join(map(str, load))


def plan(workers):
    """Every mode, in the order of NAMES. Read the CPUs before the driver
    pins itself to the pinned mode's load CPUs."""
    all_cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    proxy_cpus, load_cpus = cpu_plan(workers)
    if proxy_cpus:
        pinning = (f"proxies pinned to CPU {proxy_cpus}; clients (wrk, iperf3, idle "
                   f"client) and backends (nginx, iperf3 -s) pinned to CPU {load_cpus} "
                   f"(taskset), so \"direct\" runs client and backend on one CPU")
    else:
        load_cpus = all_cpus
        pinning = "no CPU pinning (too few CPUs for the worker count)"
    shared = (f"nothing pinned: proxies, clients (wrk, iperf3) and backends (nginx, "
              f"iperf3 -s) share CPUs {all_cpus}")
    return [
        Mode("pinned", f"pinned, {workers} worker(s) each", workers,
             proxy_cpus, load_cpus, pinning),
        Mode("unpinned", "unpinned, one worker each", 1, all_cpus, all_cpus,
             shared + "; ringlb workers 1, HAProxy nbthread 1, nginx worker_processes 1"),
        Mode("deployed", "as deployed: unpinned, every proxy on its defaults", None,
             all_cpus, all_cpus,
             shared + f"; each proxy on its defaults for {os.cpu_count()} CPUs: ringlb "
             "without `workers`, HAProxy without `nbthread`, nginx `worker_processes auto`"),
    ]
