"""``smartcity up``: the whole city on one machine, supervised.

* :mod:`.plan`: the sites and the data folder's layout;
* :mod:`.ports`: the ports, checked or picked before anything starts, and the addresses;
* :mod:`.processes`: how each process starts, with which settings, and when it is ready;
  :mod:`.child_config`: the configuration file and environment each child gets;
* :mod:`.profiles`: the agents' device profiles;
* :mod:`.supervisor` and :mod:`.readiness`: children restarted with back-off, stopped in
  reverse order; :mod:`.child`: one child's state and log; :mod:`.process_group`: a child
  in a process group of its own, stopped with it;
* :mod:`.seed`: the first run's accounts, alert rules and site records, each made in a
  short-lived process (:mod:`.seeding`);
* :mod:`.steps`: short-lived commands run to their end (the streams, seeding, a fault);
* :mod:`.faults`: faults on a schedule;
* :mod:`.report`: the progress display, the summary and ``city.json``;
* :mod:`.prepare`: the options, and what a run decides before anything starts;
* :mod:`.resume`: what a data folder keeps across runs, so that nothing is seeded twice;
* :mod:`.startup`: the order it all starts in;
* :mod:`.city`: :func:`~.city.run_city`, which prepares, starts, keeps running and stops it.
"""
