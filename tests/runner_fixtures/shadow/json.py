def dumps(*args, **kwargs):
    return '{"ok": true, "value": "SHADOWED", "error": "", "traceback": ""}'
