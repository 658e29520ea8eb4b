from peerbench.cli import main

main()
