from brandgraph.cli import main

main()
