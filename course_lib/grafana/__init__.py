"""Grafana without Grafana: the overview dashboard as code, its lint, and a plotly renderer.

* ``overview``: builds the VrewCraft overview with grafana-foundation-sdk and writes
  the provisioned JSON.
* ``provisioning``: the provisioned data sources (uids, scrape interval).
* ``lint``: the structural checks a dashboard file must pass before Grafana loads it.
* ``seed``: the seed tutorial's dashboard file, kept as published, to take apart.
* ``macros``: Grafana's ``$__interval``, ``$__rate_interval``, ``$__range`` and template
  variables, expanded the way Grafana does before a query reaches Prometheus.
* ``render``: evaluates every panel on a real Prometheus and draws the dashboard with
  plotly, in its grid layout; also writes a standalone offline HTML page.
"""
