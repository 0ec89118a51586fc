"""The Spark engine (``--engine spark``): ``engine`` runs the stages, ``cleaning``,
``lists`` and ``histories`` are the stages in Spark SQL, ``frames`` moves data between
Spark and pandas."""
