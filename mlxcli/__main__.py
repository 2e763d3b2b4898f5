from mlxcli.cli import main

main()
