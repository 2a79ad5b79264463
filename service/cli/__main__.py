"""`python -m service.cli`: the same as the `enasctl` console script."""

from service.cli import main

main()
