"""The stress ramp (``python -m loadtests run stress``): the users of the report's §6 and §7 on
the asyncio generator (``users``) or under locust (``locust_shape``), the steps and how one is
judged (``steps``), the ramp itself (``ramp``) and its report (``report``)."""
