"""``smartcity up``: the whole city on one machine, supervised.

* :mod:`.plan`: the sites, the ports and the data folder's layout;
* :mod:`.processes`: how each process starts, with which settings, and when it is ready;
* :mod:`.profiles`: the agents' device profiles;
* :mod:`.supervisor` and :mod:`.readiness`: children in their own process groups, restarted
  with back-off, stopped in reverse order;
* :mod:`.seed`: the first run's accounts, alert rules and site records;
* :mod:`.faults`: faults on a schedule;
* :mod:`.report`: the progress display, the summary and ``city.json``;
* :mod:`.city`: the order it all starts in.
"""
