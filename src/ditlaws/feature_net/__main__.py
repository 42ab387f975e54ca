import sys

from ditlaws.feature_net.train import main

sys.exit(main())
