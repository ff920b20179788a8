print("s2i fallback module")
