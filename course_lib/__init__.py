"""The VrewCraft monitoring course: everything the notebooks import, and what they observe.

The learner's toolkit (what notebook cells call):

* ``stack`` — start or reuse the local stack and query it: ``ensure_running()``,
  ``stack.query(...)``, ``stack.wait_for(...)``.
* ``prom`` — Prometheus' HTTP API as pandas DataFrames; every request to Prometheus
  goes through it, with the same two errors (``PromQLError``, ``PrometheusUnreachable``).
* ``lesson`` — helpers the notebooks share: push and wait for the scrape, samples as
  tables, charts, ``describe_metric``, ``show_source``.
* ``exercises`` — ``check()`` and ``solution()`` for every exercise; ``promql_hints``
  names the usual PromQL mistakes in a learner's query; ``progress`` records every check
  and shows what is done (``lesson.progress()``, ``python -m course_lib progress``).
* ``explain`` — a query's parse tree with every sub-expression evaluated on the stack.
* ``alerting`` — rule unit tests, routing checks and the pieces of a live incident
  (alert states, notifications, silences).
* ``grafana`` — Grafana without Grafana: the overview dashboard as code
  (grafana-foundation-sdk), its lint, and a plotly renderer.
* ``cards`` — interview cards as data (answer, common wrong answer, Korean term, PCA
  domain), each with a proof on the stack; Anki, CSV and Markdown export.
* ``scale`` — the extra processes of the production lesson (service replicas found
  through file discovery, a scratch target and Prometheus, a federating "global"
  Prometheus, an HA pair writing to VictoriaMetrics), started only when asked;
  ``cardinality`` grows one label on the scratch target and measures the cost;
  ``querycost`` times queries as Prometheus reports them; ``recorded_history``
  backfills the recording rules over the day of history.
* ``quiz`` — a seeded quiz drawn from the cards in the PCA domain proportions, graded by
  the exercise system, with a score per domain and the cards to review.

The system being observed:

* ``service`` — VrewCraft, a small FastAPI video backend with real ffmpeg, instrumented
  with prometheus_client (``service.metrics``, ``service.middleware``).
* ``traffic`` — a seeded, realistic request mix against the service.
* ``history`` and ``backfill`` — a simulated day of VrewCraft's metrics, written into
  Prometheus before the live data, so lessons have a daily cycle and an incident.
* ``sinks`` — the SMTP and webhook receivers that record Alertmanager's notifications.

Plumbing: ``config`` (ports, state directory, environment variables), ``supervisor``
(processes, ports, polling, the list of system binaries), ``lab`` (JupyterLab as
``make lab`` starts it, and the stack UIs it proxies), ``__main__``
(``python -m course_lib up | down | status | logs | doctor | progress | lab | cards``).
Instructor tooling (``make solutions``, ``make site``) lives beside it in ``course_tools``.

"The seed" in comments and notebooks is the Korean tutorial this course grew from,
*Prometheus + Grafana 모니터링* (VrewCraft); the notebooks teach its mistakes as errata.
"""
