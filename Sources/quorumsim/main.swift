print("quorumsim")
