from sdtutor.cli.main import run

run()
