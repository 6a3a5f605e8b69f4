"""The function app as the Functions host indexes it: `get_functions()` may run once per process."""

import function_app

FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}
