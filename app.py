"""Web chat: ``python app.py [--host H] [--port P] [--corpus DIR] [--index DIR]``, same as ``chatbot serve``."""

import sys

from chatbot.serve.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
