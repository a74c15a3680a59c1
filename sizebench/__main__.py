from sizebench.cli import main

main()
