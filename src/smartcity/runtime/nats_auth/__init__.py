"""Least privilege on NATS: who may publish and subscribe to what, and how they log in.

* :mod:`.credentials`: the credentials a process connects with (a user and a password, or
  the credentials file that holds them), each principal's own reply-inbox prefix, and the
  server's refusals put in words that name the user and the subject.
* :mod:`.plan`: the platform's principals (admin, services, edge agents) and the
  publish/subscribe permissions each one gets, from the subject namespace of
  :mod:`smartcity.runtime.subjects` and the streams of :mod:`smartcity.runtime.bus`.
* :mod:`.render`: that plan as a nats-server ``authorization`` block holding only bcrypt
  hashes, plus one credentials file per principal (mode 0600).

This package imports nothing on purpose: :mod:`smartcity.runtime.bus` uses
:mod:`.credentials`, while :mod:`.plan` needs the bus's stream names.
"""
