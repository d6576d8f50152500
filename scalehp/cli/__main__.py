from scalehp.cli import main

main()
