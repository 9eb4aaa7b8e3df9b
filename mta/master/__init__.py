"""master: the process that runs, watches, reloads and stops every other mta process.

    master    the supervisor (see mta.master.master for the process model and parameters)
    control   master.lock, master.pid and master.status: how `mta stop|reload|status` find it

The master imports no service: it runs each one as `python -m mta.<service>` (the table is
mta.config.mastercf.COMMAND_MODULES).
"""
