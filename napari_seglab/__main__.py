from napari_seglab.cli import main

raise SystemExit(main())
