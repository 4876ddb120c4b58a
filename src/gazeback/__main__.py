from gazeback.cli import cli

cli()
