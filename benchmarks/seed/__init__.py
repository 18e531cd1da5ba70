"""The seed's design (``slow-config.txt``), re-implemented faithfully as the baseline (b).

Three programs, as the seed describes them, all with PAIR sockets and string frames:

* :mod:`benchmarks.seed.mylib_proxy` — the module ``prog`` imports: ``init`` connects and
  sends ``INIT``, ``calc(x)`` sends ``['CALC', str(x)]`` and returns the ``CALC-RESULT``,
  ``uninit`` sends ``UNINIT``;
* :mod:`benchmarks.seed.service` — the broker between them: forwards, and answers
  ``CALC-FAIL`` at once while ``waiting`` (``readConfig`` running);
* :mod:`benchmarks.seed.mylib_run` — drives :mod:`examples.mylib`; after the idle timeout it
  sends ``TIMEOUT`` and runs ``readConfig`` when the service answers ``READCONFIG``.

Only the ports and the idle timeout are arguments (the seed hard-codes 6000, 6002 and 10 s),
so the benchmark can run it beside the others.
"""
